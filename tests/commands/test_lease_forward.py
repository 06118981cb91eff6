"""The forward spec of `byteleap leases forward`, as ssh -L takes it."""

from __future__ import annotations

import pytest

from byteleap.commands.lease_forward import parse_forward


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("8888:localhost:8888", (8888, "localhost", 8888)),
        ("9000:10.0.0.5:80", (9000, "10.0.0.5", 80)),
        ("0:127.0.0.1:6006", (0, "127.0.0.1", 6006)),
        ("8080:80", (8080, "localhost", 80)),
        ("jupyter:8888", (8888, "jupyter", 8888)),
    ],
)
def test_forward_specs(spec: str, parsed: tuple[int, str, int]) -> None:
    assert parse_forward(spec) == parsed


@pytest.mark.parametrize(
    "spec", ["", "8888", "a:b:c", "1:2:3:4", "70000:localhost:80", "80:localhost:0", "1::80"]
)
def test_bad_forward_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"LOCAL_PORT|host or port"):
        parse_forward(spec)
