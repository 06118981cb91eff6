"""How the customer commands write things for people (pure: strings in, strings out).

Times are ISO 8601 in UTC (the API and the SDK keep Unix epoch seconds; ``--json`` prints
what the API sent). A table cell is one line whatever it holds: control characters are
escaped (a command's newline shows as ``\\n``, an escape sequence cannot reach the terminal)
and a long cell is cut with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from byteleap.sdk import format_amount, format_rate

ELLIPSIS = "…"
NONE = "-"

# C0 controls and DEL as the escapes Python would write (\n, \t, \x1b …)
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(32), 127)}


def iso(ts: float | None) -> str:
    """Epoch seconds as ``2025-01-31T12:00:00+00:00``; ``-`` for none."""
    if ts is None:
        return NONE
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def money(amount: float, currency: str) -> str:
    """An amount with its unit, to the micro-units receipts count (``0.000270 TAO``)."""
    return format_amount(amount, currency)


def rate(per_s: float, currency: str) -> str:
    """A price per second with its unit (``0.0008 TAO/s``)."""
    return format_rate(per_s, currency)


def duration(seconds: float) -> str:
    """``0.4s``, ``12s``, ``3m04s``, ``2h05m``."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def one_line(text: str, width: int | None = None) -> str:
    """``text`` with control characters escaped, cut to ``width`` characters with ``…``."""
    flat = text.translate(_ESCAPES)
    if width is not None and len(flat) > width:
        return flat[: max(0, width - 1)] + ELLIPSIS
    return flat


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart under ``headers`` (the last column unpadded, so
    no line ends in spaces); each cell made one line."""
    cells = [[one_line(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]))
    return lines
