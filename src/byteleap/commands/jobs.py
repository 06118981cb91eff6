"""`byteleap jobs …`: a customer's jobs on a gateway, through the SDK.

The gateway and key come from ``--gateway``/``--api-key`` or ``BYTELEAP_GATEWAY_URL`` and
``BYTELEAP_API_KEY`` (see ``commands.customer``). An error prints one line to stderr and
exits 1; `result` (and `submit --wait`) exit with the job's own exit code. ``--json`` prints
the job as the API has it; `submit --wait` shows the job's steps on stderr as it goes.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from byteleap.commands.billing import print_estimate
from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    EXIT_ERROR,
    ApiKeyOption,
    CaBundleOption,
    GatewayOption,
    JsonFlag,
    LimitOption,
    SpecFileOption,
    echo_listing,
    echo_record,
    fail,
    gateway_client,
    read_spec,
)
from byteleap.commands.job_watch import end_line, follow
from byteleap.commands.render import iso, money, one_line
from byteleap.sdk import JobView, LogEntry

app = typer.Typer(no_args_is_help=True, add_completion=False)

EXIT_NOT_FINISHED = 3
EXIT_INTERRUPTED = 130  # as a shell reports Ctrl-C
COMMAND_WIDTH = 60


def _spec_body(
    spec_file: Path | None,
    command: list[str] | None,
    image: str | None,
    gpus: int | None,
    timeout: float | None,
    env: list[str] | None,
) -> dict[str, Any]:
    """The job body: the ``--spec`` file if any, with each option given on top of it."""
    body = read_spec(spec_file)
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
    spec_file: SpecFileOption = None,
    image: Annotated[str | None, typer.Option(help="Run in this container image.")] = None,
    gpus: Annotated[int | None, typer.Option(min=0, help="GPUs to reserve.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Job timeout, seconds.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Submit at most once.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show its progress, then its result.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what it would hold and the workers that fit; submit nothing."
        ),
    ] = False,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Submit a job and print its id (with --wait: follow it, print its result and exit with
    its code; with --json: the job, at submit or, with --wait, at its end)."""
    body = _spec_body(spec_file, command, image, gpus, timeout, env)
    if dry_run:
        with gateway_client(gateway, api_key, ca_bundle) as client:
            estimate = client.estimate(body)
        echo_record(estimate, as_json, lambda: print_estimate(estimate))
        return
    with gateway_client(gateway, api_key, ca_bundle) as client:
        job = client.submit(body, idempotency_key=idempotency_key)
        if not wait:
            echo_record(job, as_json, lambda: typer.echo(job.id))
            return
        console = Console(stderr=True)
        console.print(f"job {job.id} submitted", markup=False, highlight=False)
        try:
            job = follow(client, job, console)
        except KeyboardInterrupt:
            typer.echo(
                f"stopped waiting; job {job.id} goes on (byteleap jobs status {job.id}, "
                f"byteleap jobs cancel {job.id})",
                err=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
    _print_result(job, as_json)


@app.command("status")
def status(
    job_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show a job's state."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        job = client.get(job_id)
    echo_record(job, as_json, lambda: _echo_job(job))


def _echo_job(job: JobView) -> None:
    shown: dict[str, object] = {
        "id": job.id, "state": job.state, "attempts": job.attempts, "worker_id": job.worker_id,
        "miner_hotkey": job.miner_hotkey, "exit_code": job.exit_code,
        "cost": money(job.cost, job.currency), "created_at": iso(job.created_at),
    }  # fmt: skip
    if job.started_at is not None:
        shown["started_at"] = iso(job.started_at)
    if job.finished_at is not None:
        shown["finished_at"] = iso(job.finished_at)
    if job.error:
        shown["error"] = one_line(job.error)
    for key, value in shown.items():
        if value is not None:
            typer.echo(f"{key}: {value}")


@app.command("list")
def list_jobs(
    limit: LimitOption = 100,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """List your jobs, newest first."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        jobs = client.list(limit)
    echo_listing(jobs, as_json, _LIST_HEADERS, _job_row)


_LIST_HEADERS = ("ID", "STATE", "EXIT", "COST", "CREATED", "COMMAND")


def _job_row(job: JobView) -> tuple[str, ...]:
    code = "-" if job.exit_code is None else str(job.exit_code)
    command = one_line(shlex.join(job.spec.command), COMMAND_WIDTH)
    return (job.id, job.state, code, money(job.cost, job.currency), iso(job.created_at), command)


@app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Until the job ends.")] = False,
    after: Annotated[int, typer.Option(min=0, help="First line number.")] = 0,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Print a job's log lines (stderr lines to stderr)."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        entries = client.stream_logs(job_id, after) if follow else client.logs(job_id, after)
        for entry in entries:
            _print_line(entry)


@app.command("cancel")
def cancel(
    job_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Cancel a job wherever it is."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        job = client.cancel(job_id)
    echo_record(job, as_json, lambda: typer.echo(f"{job.id} {job.state}"))


@app.command("result")
def result(
    job_id: str,
    download: Annotated[
        Path | None,
        typer.Option(
            "--download", help="Save the job's artifacts under this directory.", file_okay=False
        ),
    ] = None,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Print a finished job's output tails and exit with its exit code (with --download,
    save its artifacts first and say which the gateway rejected; with --json, print the
    job and exit the same way)."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        job = client.get(job_id)
        if download is not None and job.state.is_terminal:
            listing = client.artifacts(job_id)
            for saved in client.download_artifacts(job_id, download):
                typer.echo(f"saved {saved}", err=True)
            for rejected in listing.rejected:
                typer.echo(f"rejected {rejected.path}: {rejected.reason}", err=True)
    _print_result(job, as_json)


def _print_line(entry: LogEntry) -> None:
    typer.echo(entry.line, err=entry.stream == "stderr")


def _print_result(job: JobView, as_json: bool = False) -> None:
    if as_json:
        typer.echo(job.model_dump_json(indent=2))
    if not job.state.is_terminal:
        typer.echo(f"job {job.id} is {job.state}, not finished", err=True)
        raise typer.Exit(EXIT_NOT_FINISHED)
    if not as_json:
        typer.echo(job.stdout_tail, nl=False)
        typer.echo(job.stderr_tail, nl=False, err=True)
        typer.echo(end_line(job), err=True)
    if job.exit_code is not None:  # a signal's negative code is no shell exit status
        raise typer.Exit(job.exit_code if 0 <= job.exit_code <= 255 else EXIT_ERROR)
    raise typer.Exit(0 if job.state == "succeeded" else EXIT_ERROR)
