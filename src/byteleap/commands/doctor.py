"""`byteleap doctor [ROLE] [--config FILE] [--json]`: is this host ready to run the role?

One line per check: its status (ok, warn, fail, skip), what was checked and, on warn or
fail, the fix (a command, or the setting to change). Without ROLE every role whose table
the config has is checked. The exit code is 1 when a check failed (a warning does not fail),
2 for a config that does not load.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from byteleap.commands.common import ConfigOption
from byteleap.config import ROLES, ConfigError, RoleSettings, load_settings

if TYPE_CHECKING:  # the checks are imported when they run: `byteleap --help` stays quick
    from byteleap.commands.doctor_checks import Finding


class Role(StrEnum):
    miner = "miner"
    worker = "worker"
    validator = "validator"
    gateway = "gateway"


EXIT_FAILED = 1


def roles_of(config: Path | None, role: Role | None) -> list[str]:
    """ROLE if given, else the roles whose tables the config file has (in a fixed order)."""
    if role is not None:
        return [role.value]
    if config is None:
        raise ConfigError("name a ROLE (miner, worker, validator, gateway) or give --config")
    try:
        data = tomllib.loads(config.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {config}", reason="config_missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config}: not valid TOML: {exc}", reason="config_syntax") from None
    found = [r.value for r in Role if isinstance(data.get(r.value), dict)]
    if not found:
        raise ConfigError(
            f"{config} has no [miner], [worker], [validator] or [gateway] table: name the ROLE"
        )
    return found


def line(finding: Finding) -> str:
    """One report line: ``status  role  check: detail`` and, on warn/fail, `` -- fix: …``."""
    text = f"{finding.status:<4}  {finding.role:<9} {finding.check}: {finding.detail}"
    if finding.fix is not None and finding.status in ("warn", "fail"):
        text += f" -- fix: {finding.fix}"
    return text


async def _run_all(settings: dict[str, RoleSettings]) -> list[Finding]:
    from byteleap.commands.doctor_checks import run_role

    found: list[Finding] = []
    for role, role_settings in settings.items():
        found += await run_role(role, role_settings)
    return found


def doctor(
    role: Annotated[
        Role | None, typer.Argument(help="The role to check (default: every role in --config).")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Check that this host can run a role: drivers, containers, ports, clock, disk, keys,
    chain and store. One line per check; exit code 1 when one failed."""
    names = roles_of(config, role)
    settings = {name: load_settings(ROLES[name], config) for name in names}
    findings = asyncio.run(_run_all(settings))
    failed = any(f.status == "fail" for f in findings)
    if as_json:
        checks = [
            {
                "role": f.role,
                "check": f.check,
                "status": f.status,
                "detail": f.detail,
                "fix": f.fix,
            }
            for f in findings
        ]
        typer.echo(json.dumps({"ok": not failed, "roles": names, "checks": checks}))
    else:
        for finding in findings:
            typer.echo(line(finding))
        counts = {s: sum(f.status == s for f in findings) for s in ("ok", "warn", "fail", "skip")}
        typer.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
    if failed:
        raise typer.Exit(EXIT_FAILED)
