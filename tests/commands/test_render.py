"""The customer commands' text: one-line cells, aligned tables, ISO times, durations."""

from __future__ import annotations

import pytest

from byteleap.commands.render import duration, iso, money, one_line, table


@pytest.mark.parametrize(
    ("text", "width", "shown"),
    [
        ("echo hi", None, "echo hi"),
        ("a\nb\tc\r", None, r"a\nb\tc\r"),
        ("\x1b[31mred\x7f", None, r"\x1b[31mred\x7f"),
        ("héllo ✓", None, "héllo ✓"),  # only control characters are escaped
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, "abcde…"),
        ("a\nbcdef", 4, r"a\n…"),  # cut after escaping: the width is what shows
    ],
)
def test_one_line(text: str, width: int | None, shown: str) -> None:
    assert one_line(text, width) == shown
    assert "\n" not in one_line(text, width)


def test_table_aligns_columns_and_flattens_cells() -> None:
    lines = table(("ID", "STATE", "COMMAND"), [("j1", "running", "a\nb"), ("job-2", "-", "x")])
    assert lines == [
        "ID     STATE    COMMAND",
        r"j1     running  a\nb",
        "job-2  -        x",
    ]


def test_an_empty_table_is_its_header() -> None:
    assert table(("ID", "STATE"), []) == ["ID  STATE"]


def test_iso_is_utc_and_none_is_a_dash() -> None:
    assert iso(0) == "1970-01-01T00:00:00+00:00"
    assert iso(1_700_000_000.7) == "2023-11-14T22:13:20+00:00"
    assert iso(None) == "-"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(-1, "0.0s"), (0.42, "0.4s"), (9.96, "10.0s"), (12.7, "12s"), (184, "3m04s"),
     (7500, "2h05m")],
)  # fmt: skip
def test_duration(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_money_has_six_decimals() -> None:
    assert money(0.00027000000000000006, "TAO") == "0.000270 TAO"
