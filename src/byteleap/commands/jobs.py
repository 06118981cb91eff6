"""`byteleap jobs …`: a customer's jobs on a gateway, through the SDK.

The gateway and key come from ``--gateway``/``--api-key`` or ``BYTELEAP_GATEWAY_URL`` and
``BYTELEAP_API_KEY`` (see ``commands.customer``). An error prints one line to stderr and
exits 1; `result` (and `submit --wait`) exit with the job's own exit code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    EXIT_ERROR,
    ApiKeyOption,
    GatewayOption,
    JsonFlag,
    fail,
    gateway_client,
)
from byteleap.sdk import JobView, LogEntry

app = typer.Typer(no_args_is_help=True, add_completion=False)

EXIT_NOT_FINISHED = 3


def _spec_body(
    spec_file: Path | None,
    command: list[str] | None,
    image: str | None,
    gpus: int | None,
    timeout: float | None,
    env: list[str] | None,
) -> dict[str, Any]:
    """The job body: the ``--spec`` file if any, with each option given on top of it."""
    body: dict[str, Any] = {}
    if spec_file is not None:
        try:
            body = json.loads(spec_file.read_text())
        except (OSError, ValueError) as exc:
            raise fail(f"error: cannot read spec {spec_file}: {exc}") from exc
        if not isinstance(body, dict):
            raise fail(f"error: spec {spec_file} is not a JSON object")
    if command:
        body["command"] = command
    if image is not None:
        body["image"] = image
    if gpus is not None:
        body["resources"] = {**body.get("resources", {}), "gpu_count": gpus}
    if timeout is not None:
        body["timeout_s"] = timeout
    for pair in env or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise fail(f"error: --env wants NAME=VALUE, got {pair!r}")
        body["env"] = {**body.get("env", {}), name: value}
    if "command" not in body:
        raise fail("error: give the command after --, or --spec FILE")
    return body


@app.command("submit")
def submit(
    command: Annotated[list[str] | None, typer.Argument(help="The command, after --.")] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="A JSON job spec.", dir_okay=False)
    ] = None,
    image: Annotated[str | None, typer.Option(help="Run in this container image.")] = None,
    gpus: Annotated[int | None, typer.Option(min=0, help="GPUs to reserve.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Job timeout, seconds.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Submit at most once.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and print the result.")] = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Submit a job and print its id (with --wait: its result, and exit with its code)."""
    body = _spec_body(spec_file, command, image, gpus, timeout, env)
    with gateway_client(gateway, api_key) as client:
        job = client.submit(body, idempotency_key=idempotency_key)
        if not wait:
            typer.echo(job.id)
            return
        typer.echo(job.id, err=True)
        job = client.wait(job.id, timeout_s=job.spec.timeout_s + 60, poll_s=0.5)
    _print_result(job)


@app.command("status")
def status(
    job_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Show a job's state."""
    with gateway_client(gateway, api_key) as client:
        job = client.get(job_id)
    if as_json:
        typer.echo(job.model_dump_json(indent=2))
        return
    for key in ("id", "state", "attempts", "worker_id", "exit_code", "error", "cost"):
        value = getattr(job, key)
        if value is not None:
            typer.echo(f"{key}: {value}")


@app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """List your jobs, newest first."""
    with gateway_client(gateway, api_key) as client:
        jobs = client.list(limit)
    if as_json:
        typer.echo(json.dumps([job.model_dump(mode="json") for job in jobs]))
        return
    for job in jobs:
        code = "" if job.exit_code is None else f" exit={job.exit_code}"
        typer.echo(f"{job.id}  {job.state}{code}  {' '.join(job.spec.command)[:60]}")


@app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Until the job ends.")] = False,
    after: Annotated[int, typer.Option(min=0, help="First line number.")] = 0,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Print a job's log lines (stderr lines to stderr)."""
    with gateway_client(gateway, api_key) as client:
        entries = client.stream_logs(job_id, after) if follow else client.logs(job_id, after)
        for entry in entries:
            _print_line(entry)


@app.command("cancel")
def cancel(
    job_id: str, gateway: GatewayOption = DEFAULT_GATEWAY, api_key: ApiKeyOption = ""
) -> None:
    """Cancel a job wherever it is."""
    with gateway_client(gateway, api_key) as client:
        job = client.cancel(job_id)
    typer.echo(f"{job.id} {job.state}")


@app.command("result")
def result(
    job_id: str,
    download: Annotated[
        Path | None,
        typer.Option(
            "--download", help="Save the job's artifacts under this directory.", file_okay=False
        ),
    ] = None,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Print a finished job's output tails and exit with its exit code (with --download,
    save its artifacts first and say which the gateway rejected)."""
    with gateway_client(gateway, api_key) as client:
        job = client.get(job_id)
        if download is not None and job.state.is_terminal:
            listing = client.artifacts(job_id)
            for saved in client.download_artifacts(job_id, download):
                typer.echo(f"saved {saved}", err=True)
            for rejected in listing.rejected:
                typer.echo(f"rejected {rejected.path}: {rejected.reason}", err=True)
    _print_result(job)


def _print_line(entry: LogEntry) -> None:
    typer.echo(entry.line, err=entry.stream == "stderr")


def _print_result(job: JobView) -> None:
    if not job.state.is_terminal:
        typer.echo(f"job {job.id} is {job.state}, not finished", err=True)
        raise typer.Exit(EXIT_NOT_FINISHED)
    typer.echo(job.stdout_tail, nl=False)
    typer.echo(job.stderr_tail, nl=False, err=True)
    why = f": {job.error}" if job.error else ""
    code = "" if job.exit_code is None else f" (exit {job.exit_code})"
    typer.echo(f"job {job.id} {job.state}{code}{why}", err=True)
    if job.exit_code is not None:  # a signal's negative code is no shell exit status
        raise typer.Exit(job.exit_code if 0 <= job.exit_code <= 255 else EXIT_ERROR)
    raise typer.Exit(0 if job.state == "succeeded" else EXIT_ERROR)
