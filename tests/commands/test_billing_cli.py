"""`byteleap balance`, `usage`, `prices` and `jobs submit --dry-run` against a real gateway
(uvicorn on loopback over the real `GatewayService`, `Billing` and a SQLite store): amounts
with their unit and rounded to micro-units, ``--json`` as the gateway answered."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from byteleap.cli import app
from byteleap.commands.billing import field_text
from byteleap.commands.services import _show as show_service
from byteleap.config import GatewaySettings
from byteleap.sdk import Client, JobView, ServiceView
from gateway.money_doubles import PRICE
from gateway.money_live import MoneyGateway

RAW_FLOAT = re.compile(r"\d\.\d{7,}")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[MoneyGateway]:
    with MoneyGateway(tmp_path, balance=5.0, settings=GatewaySettings(currency="USD")) as g:
        yield g


def cli(live: MoneyGateway, *args: str) -> Result:
    env = {"BYTELEAP_GATEWAY_URL": live.url, "BYTELEAP_API_KEY": live.api_key}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def _billed_job(live: MoneyGateway, ran_s: float = 0.3) -> str:
    """A job that ran ``ran_s`` on a doubles' worker at its price: 0.0003 by default."""
    with Client(live.url, live.api_key) as client:
        job = client.submit({"command": ["x"], "timeout_s": 60, "max_price_per_s": PRICE})
    live.bill_a_job(job.id, ran_s)
    return job.id


def test_balance_prints_each_amount_with_its_unit(live: MoneyGateway) -> None:
    _billed_job(live)
    shown = cli(live, "balance").stdout
    assert re.search(r"balance\s+4\.999700 USD", shown), shown
    assert re.search(r"held\s+0\.000000 USD", shown)
    assert re.search(r"available\s+4\.999700 USD", shown)
    assert json.loads(cli(live, "balance", "--json").stdout)["currency"] == "USD"


def test_usage_prints_items_and_days_without_float_noise(live: MoneyGateway) -> None:
    job_id = _billed_job(live)
    shown = cli(live, "usage").stdout
    assert job_id in shown and "0.000300 USD" in shown and "by day (UTC)" in shown
    assert not RAW_FLOAT.search(shown), shown
    assert "total 0.000300 USD" in shown
    data = json.loads(cli(live, "usage", "--days", "2", "--json").stdout)
    assert [i["id"] for i in data["items"]] == [job_id]
    assert data["until"] - data["since"] == pytest.approx(2 * 86400, abs=5)
    both = CliRunner().invoke(
        app, ["usage", "--days", "2", "--since", "2024-01-01"],
        env={"BYTELEAP_GATEWAY_URL": live.url, "BYTELEAP_API_KEY": live.api_key},
    )  # fmt: skip
    assert both.exit_code == 1 and "not both" in both.stderr


def test_prices_prints_per_second_and_per_hour(live: MoneyGateway) -> None:
    shown = cli(live, "prices").stdout
    assert "1 × H100 GPU" in shown and "0.0008 USD/s" in shown and "2.88 USD/h" in shown
    assert "0.00001 USD/s" in shown and "64 cores" in shown  # the doubles' idle CPU workers
    listing = json.loads(cli(live, "prices", "--json").stdout)
    assert listing["cpu"]["idle_workers"] == 64


def test_a_dry_run_prints_the_hold_and_the_workers_and_submits_nothing(
    live: MoneyGateway,
) -> None:
    result = cli(live, "jobs", "submit", "--dry-run", "--timeout", "600", "--", "train")
    shown = result.stdout
    # The job asks for one core at the gateway's price: 0.00001/s × 600 s.
    assert "would hold" in shown and "0.006000 USD" in shown and "0.00001 USD/s × 600 s" in shown
    assert "64 now" in shown and "covers it" in shown
    assert "nothing was submitted" in result.stderr
    with Client(live.url, live.api_key) as client:
        assert client.list() == []
        client.submit({"command": ["train"], "timeout_s": 600})
        assert client.balance().held == pytest.approx(0.006)  # what the dry run said


def test_job_status_prints_its_cost_with_the_unit(live: MoneyGateway) -> None:
    job_id = _billed_job(live)
    shown = cli(live, "jobs", "status", job_id).stdout
    assert "cost: 0.000300 USD" in shown


def test_field_text_writes_money_with_the_records_unit() -> None:
    view = JobView.model_validate(
        {"id": "j", "state": "succeeded", "spec": {"command": ["x"]}, "created_at": 1.0,
         "cost": 0.00027000000000000006, "currency": "USD"}
    )  # fmt: skip
    assert (field_text(view, "cost"), field_text(view, "state")) == ("0.000270 USD", "succeeded")


def test_a_service_shows_its_problem_and_its_cost_with_the_unit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    view = ServiceView.model_validate(
        {"id": "svc_1", "name": "web", "state": "active", "revision": 2, "desired_replicas": 1,
         "spec": {"name": "web", "command": ["serve"]}, "created_at": 1.0, "updated_at": 1.0,
         "cost": 0.011, "currency": "USD", "problem": "revision 2: its last 3 replicas never"}
    )  # fmt: skip
    show_service(view, as_json=False)
    shown = capsys.readouterr().out
    assert "cost 0.011000 USD" in shown and "problem: revision 2: its last 3" in shown
