"""Headless Chromium driven over the DevTools protocol (CDP) with `websockets`: enough to
load a page, wait for it, read values out of it and take a screenshot — no chromedriver,
no selenium.

`find_or_install_chromium` looks for Debian's ``chromium`` and, as root with apt, installs it
(what CI does on a fresh machine).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def find_or_install_chromium() -> tuple[str | None, str]:
    """(path, why not) — installs Debian's chromium when root and apt-get are at hand."""
    found = find_chromium()
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "chromium is not installed (apt-get install -y chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "chromium"]
    try:
        subprocess.run(install, env=env, capture_output=True, timeout=900, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"installing chromium failed: {exc}"
    found = find_chromium()
    return found, "" if found else "chromium still missing after apt-get install"


class Page:
    """One tab, spoken to with CDP commands; exceptions the page throws are collected."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.exceptions: list[str] = []
        self.console_errors: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        params = message.get("params", {})
        if message.get("method") == "Runtime.exceptionThrown":
            self.exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif message.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(json.dumps(params.get("args", []))[:500])
        elif message.get("method") == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                self.console_errors.append(str(entry.get("text", ""))[:500])

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30.0) -> Any:
        """The expression's first truthy value. While the page is still loading it may throw
        (no ``document.body`` yet): that counts as not yet, and the last error is reported
        if the time runs out."""
        last_error: RuntimeError | None = None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    try:
                        value = await self.evaluate(expression)
                    except RuntimeError as exc:
                        last_error, value = exc, None
                    if value:
                        return value
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise RuntimeError(f"{expression}: not true in {timeout_s}s") from last_error

    async def screenshot(self, width: int = 1400, height: int = 1100) -> bytes:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])


@contextlib.asynccontextmanager
async def headless(binary: str, profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with one blank tab, stopped (and reaped) on exit."""
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--headless=new",
        "--no-sandbox",  # root in a container: the setuid sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(60):
            while not (match := _LISTENING.search(line := await proc.stderr.readline())):
                if not line:
                    raise RuntimeError(f"chromium exited with {await proc.wait()}")
        drain = asyncio.create_task(_drain(proc.stderr))
        port = int(match.group(1).decode().split(":")[2].split("/")[0])
        async with httpx.AsyncClient(timeout=10) as http:
            tabs = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        ws_url = next(t["webSocketDebuggerUrl"] for t in tabs if t.get("type") == "page")
        async with connect(ws_url, max_size=None, open_timeout=10) as ws:
            page = Page(ws)
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            yield page
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading chromium's stderr so a full pipe never blocks it."""
    while await stream.readline():
        pass
