"""Generate the gRPC gateway's Python code from ``proto/`` (the build runs this; the output is
not committed).

``python -m byteleap.gateway.protogen`` writes ``_pb/`` next to this module;
``--check`` only says whether ``_pb/`` matches what the ``.proto`` files generate now.

protoc names modules after the proto package (``byteleap.gateway.v1``), which would resolve
inside our own ``byteleap`` package and fail; the generated imports between the modules are
rewritten to relative ones so ``_pb/`` works wherever the package lives.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

from byteleap.errors import ByteleapError

PROTO_ROOT = Path(__file__).resolve().parents[3] / "proto"
PROTO_PACKAGE_DIR = Path("byteleap/gateway/v1")
PB_DIR = Path(__file__).resolve().parent / "_pb"
COMMAND = "python -m byteleap.gateway.protogen"
_INIT = f'"""Generated from proto/{PROTO_PACKAGE_DIR} by `{COMMAND}`: do not edit."""\n'
_ABSOLUTE_IMPORT = re.compile(
    rf"^from {re.escape('.'.join(PROTO_PACKAGE_DIR.parts))} import ", re.M
)


class ProtogenError(ByteleapError):
    reason = "protogen_failed"


def render(proto_root: Path = PROTO_ROOT) -> dict[str, str]:
    """The generated files (name → text) for every ``.proto`` of the gateway package."""
    from grpc_tools import protoc  # a build tool: only this module needs it

    protos = sorted((proto_root / PROTO_PACKAGE_DIR).glob("*.proto"))
    if not protos:
        raise ProtogenError(f"no .proto files under {proto_root / PROTO_PACKAGE_DIR}")
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--pyi_out={tmp}",
            *(str(p.relative_to(proto_root)) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise ProtogenError(
                "protoc failed (its message is above)", protos=[str(p) for p in protos]
            )
        generated = sorted((Path(tmp) / PROTO_PACKAGE_DIR).iterdir())
        files = {p.name: _ABSOLUTE_IMPORT.sub("from . import ", p.read_text()) for p in generated}
    return {"__init__.py": _INIT, **files}


def generate(out_dir: Path = PB_DIR, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Write the generated files into ``out_dir``, removing ones no longer generated."""
    files = render(proto_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in _generated_files(out_dir):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (out_dir / name).write_text(text)
    return [out_dir / name for name in files]


def drift(out_dir: Path = PB_DIR, proto_root: Path = PROTO_ROOT) -> list[str]:
    """Names of the files in ``out_dir`` that differ from (or are missing against) a fresh
    generation; empty when they match."""
    files = render(proto_root)
    present = {p.name for p in _generated_files(out_dir)} if out_dir.is_dir() else set()
    stale = sorted(present - files.keys())
    changed = [
        name
        for name, text in files.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text() != text
    ]
    return changed + stale


def _generated_files(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.iterdir() if p.is_file() and p.suffix in (".py", ".pyi")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Generate the gRPC gateway code.")
    parser.add_argument("--check", action="store_true", help="fail if _pb/ is out of date")
    args = parser.parse_args(argv)
    if args.check:
        differing = drift()
        for name in differing:
            print(f"out of date: {PB_DIR / name}", file=sys.stderr)
        return 1 if differing else 0
    for path in generate():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
