"""`byteleap jobs …` against a real gateway (uvicorn on loopback over the in-memory service)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from subprocess import PIPE
from typing import IO

import pytest
from typer.testing import CliRunner, Result

from byteleap.commands.jobs import app
from gateway.live import ALICE_KEY, BOB_KEY, LiveGateway, tenants


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
    header, *rows = jobs(live, "list").stdout.splitlines()
    assert header.split() == ["ID", "STATE", "EXIT", "COST", "CREATED", "COMMAND"]
    assert [row.split()[:3] for row in rows] == [[second, "queued", "-"], [first, "failed", "7"]]
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


# -- following a job, --json, listing, addresses ------------------------------------------------


class _Lines:
    """A process's stderr read line by line in a thread, so a missing line fails the test
    instead of hanging it."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")

    def next(self) -> str:
        return self._lines.get(timeout=30)

    def rest(self) -> str:
        self._thread.join(30)
        return "".join(iter(self._lines.get_nowait, ""))


@contextmanager
def _cli_process(live: LiveGateway, *args: str) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "BYTELEAP_GATEWAY_URL": live.url, "BYTELEAP_API_KEY": ALICE_KEY}
    command = [sys.executable, "-m", "byteleap.cli", *args]
    with subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True, env=env) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def test_submit_wait_shows_each_step_as_it_happens(live: LiveGateway) -> None:
    with _cli_process(live, "jobs", "submit", "--wait", "--", "train") as process:
        assert process.stderr is not None and process.stdout is not None
        lines = _Lines(process.stderr)
        submitted = lines.next()
        job_id = submitted.split()[1]
        assert submitted == f"job {job_id} submitted\n"
        assert lines.next() == "queued: waiting for a worker\n"
        live.call(live.service.start, job_id, "worker-7")
        assert lines.next() == "running on worker worker-7 (miner twin-miner)\n"
        live.call(live.service.finish, job_id, 0, ["epoch 1", "done"])
        assert process.wait(30) == 0
        end = lines.rest()
        assert process.stdout.read() == "epoch 1\ndone\n"
    assert end.startswith(f"job {job_id} succeeded (exit 0) after ")
    assert end.endswith(" on worker worker-7 (miner twin-miner), cost 0.000000 TAO\n")


def test_ctrl_c_while_waiting_leaves_the_job_running(live: LiveGateway) -> None:
    with _cli_process(live, "jobs", "submit", "--wait", "--", "train") as process:
        assert process.stderr is not None
        lines = _Lines(process.stderr)
        job_id = lines.next().split()[1]
        assert lines.next().startswith("queued")
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
        assert f"stopped waiting; job {job_id} goes on" in lines.rest()
    assert live.call(live.service.job_ids) == [job_id]
    assert "state: queued" in jobs(live, "status", job_id).stdout


def _when_queued(live: LiveGateway, then: Callable[[str], object]) -> threading.Thread:
    """A thread that calls ``then(job_id)`` on the gateway's first job once it is submitted."""

    def act() -> None:
        for _ in range(500):
            queued = live.call(live.service.job_ids)
            if queued:
                live.call(then, queued[0])
                return
            time.sleep(0.02)

    helper = threading.Thread(target=act)
    helper.start()
    return helper


def test_submit_wait_says_why_the_gateway_gave_up(live: LiveGateway) -> None:
    reason = "no worker on offer can run it (needs 1 GPU, none has any); waited 600s"
    helper = _when_queued(live, lambda job_id: live.service.give_up(job_id, reason))
    result = jobs(live, "submit", "--wait", "--gpus", "1", "--", "train")
    helper.join()
    assert result.exit_code == 1
    job_id = result.stderr.split()[1]
    assert result.stderr.splitlines()[-1] == f"job {job_id} failed, cost 0.000000 TAO: {reason}"


def test_json_prints_one_document_on_stdout(live: LiveGateway) -> None:
    submitted = jobs(live, "submit", "--json", "--", "echo", "hi")
    assert submitted.exit_code == 0, submitted.output
    job = json.loads(submitted.stdout)
    assert (job["state"], job["spec"]["command"]) == ("queued", ["echo", "hi"])
    unfinished = jobs(live, "result", job["id"], "--json")
    assert unfinished.exit_code == 3 and json.loads(unfinished.stdout)["state"] == "queued"
    cancelled = jobs(live, "cancel", job["id"], "--json")
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    result = jobs(live, "result", job["id"], "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["id"] == job["id"]

    finisher = threading.Thread(target=_finish_second_job, args=(live, 5))
    finisher.start()
    waited = jobs(live, "submit", "--wait", "--json", "--", "false")
    finisher.join()
    assert waited.exit_code == 5
    shown = json.loads(waited.stdout)
    assert (shown["state"], shown["exit_code"], shown["stdout_tail"]) == ("failed", 5, "out\n")


def _finish_second_job(live: LiveGateway, code: int) -> None:
    """Finish the second job (the first was cancelled) once it is submitted."""
    for _ in range(500):
        ids = live.call(live.service.job_ids)
        if len(ids) > 1:
            live.call(live.service.finish, ids[1], code, ["out"])
            return
        time.sleep(0.02)


def test_list_keeps_each_job_on_one_line(live: LiveGateway) -> None:
    script = "import sys\nprint(sys.argv)\n\x1b[2J"
    multi = jobs(live, "submit", "--", "python", "-c", script).stdout.strip()
    long = jobs(live, "submit", "--", "echo", "x" * 200).stdout.strip()
    header, *rows = jobs(live, "list").stdout.splitlines()
    assert header.startswith("ID ") and header.endswith("COMMAND")
    assert [row.split()[0] for row in rows] == [long, multi]
    assert rows[1].endswith(r"python -c 'import sys\nprint(sys.argv)\n\x1b[2J'")
    command = rows[0][header.index("COMMAND") :]
    assert command == "echo " + "x" * 54 + "…" and len(command) == 60


def test_status_prints_times_as_iso_8601(live: LiveGateway) -> None:
    job_id = jobs(live, "submit", "--", "echo").stdout.strip()
    live.call(live.service.finish, job_id, 0)
    shown = dict(line.split(": ", 1) for line in jobs(live, "status", job_id).stdout.splitlines())
    as_json = json.loads(jobs(live, "status", job_id, "--json").stdout)
    for key in ("created_at", "started_at", "finished_at"):
        when = datetime.fromisoformat(shown[key])
        assert when.utcoffset() == timedelta(0)
        assert abs(when.timestamp() - as_json[key]) < 1
    assert (shown["worker_id"], shown["miner_hotkey"]) == ("worker-0", "twin-miner")


def test_spec_file_is_an_alias_of_spec(live: LiveGateway, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"command": ["a"], "retries": 1}))
    result = jobs(live, "submit", "--spec-file", str(spec), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spec"]["retries"] == 1
    spec.write_text("{not json")
    broken = jobs(live, "submit", "--spec", str(spec))
    assert broken.exit_code == 1 and broken.stderr.startswith(f"error: spec {spec} is not JSON")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/", "error: cannot reach the gateway at http://127.0.0.1:9 (GET "
         "/v1/jobs): connection refused"),
        ("localhost:8080", "error: bad gateway URL 'localhost:8080': it must start with "
         "http:// or https:// (e.g. http://localhost:8080)"),
        ("http://", "error: bad gateway URL 'http://': it names no host"),
    ],
)  # fmt: skip
def test_a_bad_or_unreachable_gateway_is_one_plain_line(url: str, message: str) -> None:
    env = {"BYTELEAP_GATEWAY_URL": url, "BYTELEAP_API_KEY": "k"}
    result = CliRunner().invoke(app, ["list"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert "//v1" not in result.stderr and "Error(" not in result.stderr


def test_a_trailing_slash_on_the_gateway_is_dropped(live: LiveGateway) -> None:
    env = {"BYTELEAP_GATEWAY_URL": live.url + "/", "BYTELEAP_API_KEY": ALICE_KEY}
    result = CliRunner().invoke(app, ["list"], env=env)
    assert result.exit_code == 0, result.output
