"""A Server-Sent Events parser over text lines (the subset the gateway sends: ``event``,
``id``, ``data`` fields and ``:`` comments). Pure: the client feeds it the lines it reads."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from pydantic import BaseModel


class ServerEvent(BaseModel):
    event: str = "message"
    data: str = ""
    id: str | None = None


class EventParser:
    """Feed lines one at a time; a blank line completes an event, which `feed` returns."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._reset()
                return None
            event = ServerEvent(event=self._event, data="\n".join(self._data), id=self._id)
            self._reset()
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


async def parse_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerEvent]:
    parser = EventParser()
    async for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
