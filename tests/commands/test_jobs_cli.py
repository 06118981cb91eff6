"""`byteleap jobs …` against a real gateway (uvicorn on loopback over the in-memory service)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from byteleap.commands.jobs import app
from cloud.gateway.live import ALICE_KEY, BOB_KEY, LiveGateway, tenants


@pytest.fixture
def live() -> Iterator[LiveGateway]:
    with LiveGateway(tenants()) as gateway:
        yield gateway


def jobs(live: LiveGateway, *args: str, key: str = ALICE_KEY) -> Result:
    env = {"BYTELEAP_GATEWAY_URL": live.url, "BYTELEAP_API_KEY": key}
    return CliRunner().invoke(app, list(args), env=env)


def test_submit_command_after_double_dash_with_options(live: LiveGateway) -> None:
    result = jobs(
        live, "submit", "--gpus", "1", "--timeout", "60", "--env", "A=1", "--env", "B=x=y",
        "--", "python", "-c", "print(1)",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    status = jobs(live, "status", job_id, "--json")
    spec = json.loads(status.stdout)["spec"]
    assert spec["command"] == ["python", "-c", "print(1)"]
    assert spec["env"] == {"A": "1", "B": "x=y"}
    assert (spec["resources"]["gpu_count"], spec["timeout_s"]) == (1, 60)


def test_submit_from_a_spec_file_with_overrides(live: LiveGateway, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"command": ["a"], "env": {"K": "1"}, "retries": 0}))
    result = jobs(live, "submit", "--spec", str(spec), "--env", "L=2", "--image", "img:1")
    assert result.exit_code == 0, result.output
    shown = json.loads(jobs(live, "status", result.stdout.strip(), "--json").stdout)["spec"]
    assert (shown["command"], shown["image"], shown["retries"]) == (["a"], "img:1", 0)
    assert shown["env"] == {"K": "1", "L": "2"}


def test_status_list_logs_result_cancel(live: LiveGateway) -> None:
    first = jobs(live, "submit", "--", "echo", "hi").stdout.strip()
    second = jobs(live, "submit", "--", "sleep", "9").stdout.strip()
    live.call(live.service.append_log, first, "oops", "stderr")
    live.call(live.service.finish, first, 7, ["out 1", "out 2"])
    assert "state: failed" in jobs(live, "status", first).stdout
    listed = jobs(live, "list").stdout
    assert first in listed and second in listed and "exit=7" in listed
    logs = jobs(live, "logs", first)
    assert logs.stdout == "out 1\nout 2\n"
    assert logs.stderr == "oops\n"
    result = jobs(live, "result", first)
    assert result.exit_code == 7
    assert result.stdout == "out 1\nout 2\n"
    assert "oops" in result.stderr and "failed (exit 7)" in result.stderr
    unfinished = jobs(live, "result", second)
    assert unfinished.exit_code == 3
    cancelled = jobs(live, "cancel", second)
    assert cancelled.stdout.strip() == f"{second} cancelled"
    assert jobs(live, "result", second).exit_code == 1


def test_logs_follow_until_the_job_ends(live: LiveGateway) -> None:
    job = jobs(live, "submit", "--", "echo").stdout.strip()
    live.call(live.service.start, job)
    live.call(live.service.append_log, job, "early")
    timer = threading.Timer(0.3, lambda: live.call(live.service.finish, job, 0, ["late"]))
    timer.start()
    try:
        result = jobs(live, "logs", job, "--follow")
    finally:
        timer.join()
    assert result.exit_code == 0, result.output
    assert result.stdout == "early\nlate\n"


def test_submit_wait_exits_with_the_jobs_code(live: LiveGateway) -> None:
    def finish_when_queued() -> None:
        for _ in range(200):
            queued = live.call(live.service.job_ids)
            if queued:
                live.call(live.service.finish, queued[0], 4, ["done"])
                return
            threading.Event().wait(0.02)

    helper = threading.Thread(target=finish_when_queued)
    helper.start()
    result = jobs(live, "submit", "--wait", "--", "false")
    helper.join()
    assert result.exit_code == 4
    assert result.stdout == "done\n"


@pytest.mark.parametrize(
    ("args", "key", "message"),
    [
        (("status", "nope"), ALICE_KEY, "404 not_found"),
        (("list",), "wrong", "401 unauthorized"),
        (("submit", "--timeout", "-1", "--", "x"), ALICE_KEY, "(field timeout_s)"),
        (("submit",), ALICE_KEY, "give the command"),
        (("submit", "--env", "NOEQUALS", "--", "x"), ALICE_KEY, "NAME=VALUE"),
        (("list",), "", "no API key"),
    ],
)
def test_errors_print_one_line_and_exit_1(
    live: LiveGateway, args: tuple[str, ...], key: str, message: str
) -> None:
    result = jobs(live, *args, key=key)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_another_tenants_job_is_not_found(live: LiveGateway) -> None:
    job = jobs(live, "submit", "--", "echo").stdout.strip()
    assert jobs(live, "cancel", job, key=BOB_KEY).exit_code == 1
    assert "state: queued" in jobs(live, "status", job).stdout


def test_unreachable_gateway_is_one_line(tmp_path: Path) -> None:
    env = {"BYTELEAP_GATEWAY_URL": "http://127.0.0.1:9", "BYTELEAP_API_KEY": "k"}
    result = CliRunner().invoke(app, ["list"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1


def test_result_download_saves_the_artifacts_and_names_the_rejected(
    live: LiveGateway, tmp_path: Path
) -> None:
    job_id = jobs(live, "submit", "--", "make").stdout.strip()
    live.call(live.service.finish, job_id, 0, ["built"])
    live.call(live.service.add_artifact, job_id, "bin/app", b"\x7fELF...")
    live.call(live.service.add_artifact, job_id, "log.txt", b"ok\n")
    live.call(live.service.reject_artifact, job_id, "core", 1 << 30, "over the limit")
    out = tmp_path / "out"
    result = jobs(live, "result", job_id, "--download", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "bin" / "app").read_bytes() == b"\x7fELF..."
    assert (out / "log.txt").read_bytes() == b"ok\n"
    assert "rejected core: over the limit" in result.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["app", "bin", "log.txt"]
    assert jobs(live, "result", job_id, "--download", str(out), key=BOB_KEY).exit_code == 1
