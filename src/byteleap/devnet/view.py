"""The devnet's live view: the step in progress and, once the validator scores, a miners table.

The table is rebuilt from the validator's store every few seconds by a background task, so it
shows what the validator itself would compute: challenges passed and failed, verified
throughput, availability, lease and final scores, and the weight last accepted on chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from rich.console import Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from byteleap.errors import ByteleapError
from byteleap.validator.scores import ScoreResult

log = logging.getLogger(__name__)

REFRESH_S = 2.0


class LiveView:
    def __init__(self, names: Callable[[str], str]) -> None:
        self._names = names  # hotkey -> wallet name (or the hotkey when unknown)
        self.step = ""
        self.detail = ""
        self.scores: ScoreResult | None = None
        self.cheats: dict[str, str] = {}  # hotkey -> cheat

    def render(self) -> RenderableType:
        text = f"[bold]{self.step}[/]" + (f": {self.detail}" if self.detail else "") + "…"
        spinner = Spinner("dots", text=text)
        if self.scores is None or not self.scores.board.miners:
            return spinner
        return Group(spinner, self.table(self.scores))

    def table(self, scores: ScoreResult) -> Table:
        table = Table(title="miners as the validator scores them now", title_justify="left")
        table.add_column("miner")
        table.add_column("cheat")
        for column in ("wkrs", "pass", "fail", "GFLOP/s", "avail", "chal", "lease"):
            table.add_column(column, justify="right")
        table.add_column("final", justify="right")
        table.add_column("weight", justify="right")
        for miner in scores.board.miners:
            workers = [w for w in scores.board.workers if w.miner_hotkey == miner.hotkey]
            counted = [w for w in workers if w.counted] or workers
            flops = sum(w.performance for w in counted)
            availability = sum(w.availability for w in workers) / len(workers) if workers else 0.0
            table.add_row(
                self._names(miner.hotkey),
                self.cheats.get(miner.hotkey, ""),
                str(len(workers)),
                str(sum(w.successes for w in workers)),
                str(sum(w.failures for w in workers)),
                f"{flops / 1e9:.2f}",
                f"{availability:.2g}",
                f"{miner.challenge:.3f}",
                f"{miner.lease:.3f}",
                f"{miner.final:.3f}",
                f"{scores.weight_of(miner.hotkey):.3f}",
            )
        return table


@contextlib.asynccontextmanager
async def live_view(
    view: LiveView, live: Live, score: Callable[[], Awaitable[ScoreResult | None]]
) -> AsyncIterator[LiveView]:
    """Keep ``view.scores`` fresh while the steps run; the refresher never fails a step."""

    async def refresh() -> None:
        while True:
            try:
                scores = await score()
            except (ByteleapError, OSError) as exc:  # store not created yet, chain busy
                log.debug("live view not refreshed", extra={"error": str(exc)})
            else:
                if scores is not None:
                    view.scores = scores
                    live.refresh()
            await asyncio.sleep(REFRESH_S)

    task = asyncio.create_task(refresh(), name="devnet-view")
    try:
        yield view
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
