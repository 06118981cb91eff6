"""The docs checked against the code: the API reference is the generated one, every REST path
is in it, and the parameter defaults quoted in docs/ are the code's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from byteleap.config import ValidatorSettings
from byteleap.gateway import apidoc
from byteleap.scoring import ScoringParams

DOCS = Path(__file__).resolve().parents[2] / "docs"
README = DOCS.parent / "README.md"
_ROW = re.compile(r"^\| `(\w+)` \| ([^|]+?) \|", re.M)


def quoted_params(doc: str, model: str) -> dict[str, str]:
    text = (DOCS / doc).read_text()
    block = re.search(rf"<!-- params:{model} -->(.*?)<!-- /params -->", text, re.S)
    assert block, f"{doc} has no parameter table for {model}"
    return dict(_ROW.findall(block.group(1)))


def _same(quoted: str, actual: Any) -> bool:
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return quoted == str(actual)
    return float(quoted) == float(actual)


@pytest.mark.parametrize(
    ("doc", "model"),
    [("scoring.md", ScoringParams()), ("protocol.md", ValidatorSettings())],
    ids=["scoring", "protocol"],
)
def test_quoted_defaults_are_the_code_defaults(doc: str, model: BaseModel) -> None:
    quoted = quoted_params(doc, type(model).__name__)
    assert quoted, doc
    values = model.model_dump()
    wrong = {k: (v, values.get(k)) for k, v in quoted.items() if not _same(v, values.get(k))}
    assert wrong == {}, f"{doc}: quoted default ≠ code default"


def test_every_scoring_param_is_documented() -> None:
    assert set(quoted_params("scoring.md", "ScoringParams")) == set(ScoringParams.model_fields)


def test_api_reference_is_fresh() -> None:
    """Fails when a route or model changed without `python -m byteleap.gateway.apidoc`."""
    assert (DOCS / "api.md").read_text() == apidoc.render(apidoc.gateway_spec())


def test_every_rest_path_is_documented() -> None:
    spec = apidoc.gateway_spec()
    text = (DOCS / "api.md").read_text()
    paths = spec["paths"]
    assert {"/v1/jobs", "/v1/leases", "/v1/network/overview"} <= set(paths)
    for path, item in paths.items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text, (method, path)


def test_apidoc_check_mode(tmp_path: Path) -> None:
    out = tmp_path / "api.md"
    assert apidoc.main(["--out", str(out)]) == 0
    assert apidoc.main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text() + "drift\n")
    assert apidoc.main(["--out", str(out), "--check"]) == 1


def test_docs_link_each_other_and_readme_points_to_them() -> None:
    readme = README.read_text()
    for name in ("protocol.md", "scoring.md", "api.md"):
        assert (DOCS / name).exists()
        assert f"docs/{name}" in readme, f"README does not link docs/{name}"
