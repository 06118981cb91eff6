"""`byteleap services …` against a real gateway app (uvicorn on loopback) over a real service
desk and SQLite store with no miners: specs from a file with options on top, --json, lists."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from byteleap.commands.services import app
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_services import mount_services
from gateway.services_desk import Desk, open_desk


@pytest.fixture
async def served(sqlite_url: str, free_port: Callable[[], int]) -> AsyncIterator[Desk]:
    desk = await open_desk(sqlite_url)
    rest = create_rest_app(desk.tenants)
    mount_services(rest, desk.desk)
    port = free_port()
    config = uvicorn.Config(rest, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.05)
    desk.url = f"http://127.0.0.1:{port}"  # the gateway's, from here on
    try:
        yield desk
    finally:
        server.should_exit = True
        await task
        await desk.close()


async def services(desk: Desk, *args: str) -> Result:
    # The CLI blocks on HTTP; it runs in a thread while this loop serves the gateway.
    env = {"BYTELEAP_GATEWAY_URL": desk.url, "BYTELEAP_API_KEY": desk.keys["alice"]}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def _created(desk: Desk, *args: str) -> dict[str, Any]:
    result = await services(desk, "create", "--json", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


async def test_create_from_a_spec_file_alone_keeps_all_of_it(served: Desk, tmp_path: Path) -> None:
    spec = {
        "name": "llm", "command": ["python", "serve.py"], "env": {"MODEL": "tiny"},
        "autoscale": {"min_replicas": 2, "max_replicas": 3}, "health": {"path": "/ready"},
    }  # fmt: skip
    path = tmp_path / "svc.json"
    path.write_text(json.dumps(spec))
    for flag in ("--spec", "--spec-file"):
        shown = (await _created(served, flag, str(path)))["spec"]
        assert (shown["name"], shown["command"], shown["env"]) == (
            "llm",
            spec["command"],
            spec["env"],
        )
        autoscale = shown["autoscale"]
        assert (autoscale["min_replicas"], autoscale["max_replicas"]) == (2, 3)
        assert shown["health"]["path"] == "/ready"


async def test_options_go_on_top_of_the_spec_file(served: Desk, tmp_path: Path) -> None:
    path = tmp_path / "svc.json"
    path.write_text(json.dumps({"name": "a", "command": ["x"], "env": {"A": "1"}}))
    shown = (
        await _created(
            served, "b", "--spec", str(path), "--env", "B=2", "--min-replicas", "2",
            "--health-path", "/hz", "--", "python", "serve.py",
        )
    )["spec"]  # fmt: skip
    assert (shown["name"], shown["command"]) == ("b", ["python", "serve.py"])
    assert shown["env"] == {"A": "1", "B": "2"}
    assert (shown["autoscale"]["min_replicas"], shown["autoscale"]["max_replicas"]) == (2, 2)
    assert shown["health"]["path"] == "/hz"


async def test_create_from_arguments_alone_takes_the_defaults(served: Desk) -> None:
    shown = (await _created(served, "echo", "--", "python", "serve.py"))["spec"]
    assert (shown["autoscale"]["min_replicas"], shown["autoscale"]["max_replicas"]) == (1, 1)
    assert shown["health"]["path"] == "/health"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: give the name and the command"),
        (("--spec", "{missing}"), "error: cannot read spec"),
        (("--spec", "{broken}"), "is not JSON"),
        (("--spec", "{list}"), "is not a JSON object"),
    ],
)
async def test_a_bad_create_is_one_line(
    served: Desk, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "list.json").write_text("[]")
    paths = {name: str(tmp_path / f"{name}.json") for name in ("missing", "broken", "list")}
    result = await services(served, "create", *(arg.format(**paths) for arg in args))
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


async def test_every_record_command_prints_one_json_document(served: Desk) -> None:
    created = await _created(served, "echo", "--", "python", "serve.py")
    service_id = created["id"]
    for args in (
        ("get", service_id),
        ("scale", service_id, "--max-replicas", "2"),
        ("update", service_id, "--env", "V=2"),
        ("delete", service_id),
    ):
        result = await services(served, *args, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["id"] == service_id
    listed = await services(served, "list", "--json")
    assert [s["id"] for s in json.loads(listed.stdout)] == [service_id]


async def test_list_has_a_header(served: Desk) -> None:
    first = (await _created(served, "one", "--", "python", "serve.py"))["id"]
    second = (await _created(served, "two", "--", "python", "serve.py"))["id"]
    header, *rows = (await services(served, "list")).stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATE", "REVISION", "READY", "COST"]
    assert [row.split()[:3] for row in rows] == [
        [second, "two", "active"],
        [first, "one", "active"],
    ]
