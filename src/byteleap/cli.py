"""The `byteleap` command line: one typer app that mounts each domain's commands."""

from __future__ import annotations

import sys

import typer

from byteleap.commands import (
    bench,
    billing,
    chain,
    config_cmd,
    db,
    devnet,
    doctor,
    gateway,
    init,
    jobs,
    keys,
    leases,
    miner,
    services,
    status,
    validator,
    worker,
)
from byteleap.config import ConfigError
from byteleap.errors import ByteleapError
from byteleap.logs import configure_logging

app = typer.Typer(
    name="byteleap",
    help="byteleap: a decentralized GPU cloud for AI, run as a Bittensor subnet.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
)

app.command("devnet", help="Start a local network and run the main job.")(devnet.devnet)
app.add_typer(chain.app, name="chain", help="The local devnet chain and chain views.")
app.command("init", help="Set up a role: config, wallet and systemd units.")(init.init)
app.add_typer(keys.app, name="keys", help="Create and list bittensor wallets.")
app.add_typer(db.app, name="db", help="Database migrations for the validator store.")
app.add_typer(config_cmd.app, name="config", help="Show the effective configuration.")
app.add_typer(bench.app, name="bench", help="Benchmarks (challenge, scoring, gateway).")
app.add_typer(
    validator.app, name="validator", help="Run a validator: challenge rounds, scoring, weights."
)
app.add_typer(
    miner.app, name="miner", help="Run a miner that aggregates workers and serves validators."
)
app.add_typer(worker.app, name="worker", help="Run a worker (one per GPU, or a CPU worker).")

app.add_typer(gateway.app, name="gateway", help="Run the customer gateway; manage tenants.")
app.add_typer(jobs.app, name="jobs", help="Submit and follow jobs on a gateway.")
app.add_typer(leases.app, name="leases", help="Lease workers by the second.")
app.add_typer(services.app, name="services", help="Deploy and scale inference services.")
app.command("doctor", help="Check that this host can run a role; exit 1 on a failure.")(
    doctor.doctor
)
app.command("status", help="Summarise a running network from a gateway.")(status.status)
app.command("balance")(billing.balance)
app.command("usage")(billing.usage)
app.command("prices")(billing.prices)


def main() -> None:
    configure_logging("WARNING")
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        sys.exit(2)
    except ByteleapError as exc:
        typer.echo(f"error ({exc.reason}): {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
