"""Inputs given by URL: fetched into a content-addressed cache on the worker, copied from there
into each job's work dir (``executors.workdir.prepare_workdir``).

A file lives at ``<cache>/sha256/<hex>`` once its bytes hashed to that digest: it is streamed
into a temp file beside it while hashed, and renamed into place only when the digest (and the
size, when the spec gives one) matched, so a reader never sees a partial or wrong file and a
wrong one leaves nothing behind. A digest already held fetches nothing; its mtime is the LRU
clock (atime is often not kept: ``noatime``, ``relatime``). Past ``cache_max_bytes`` the least
recently used files go, never one a job being started holds (``pinned``). Two jobs asking for
one digest at once fetch it once: a lock per digest. The copy into a work dir hashes the file
again (a process job runs as the worker's user and could have changed it).

Why the address check: a job's URL is the customer's, and the worker sits in its miner's
network. Followed blindly, a URL to ``10.0.0.1`` or ``169.254.169.254`` would make every
worker a probe into its miner's LAN or cloud metadata service, answering through the job's
result whether a digest matched. So by default every address a host resolves to must be a
global one, checked for the first request and every redirect; the request then goes to the
address that was checked (the Host header and TLS name stay the URL's), so a DNS answer that
changes between the check and the connection cannot slip past; for the same reason no proxy
from the environment is used. ``allow_private`` lifts the check (tests, a miner that serves
its own data sets).

Failures say whose they are: ``bad_input`` (a wrong digest, a 404, a file too big, a refused
address) would fail the same on every worker, so the gateway does not retry the job elsewhere;
``input_unavailable`` (a timeout, a 503) may go better on another worker, and is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx

from byteleap.config import WorkerInputSettings
from byteleap.protocol.execution import InputFile, check_input_url
from byteleap.worker.executors.errors import ExecutorError

log = logging.getLogger(__name__)

CACHE_DIR = "input-cache"
MAX_REDIRECTS = 5
_CHUNK = 1 << 20
#: Answers another worker (or a later try) may not get: the job is retried elsewhere.
_PASSING_STATUS = frozenset({408, 429})
_PORTS = {"http": 80, "https": 443}
_MAX_ADDRESSES = 4  # of a host's, tried in turn
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class InputFetchError(ExecutorError):
    """A URL input that no worker could fetch as the spec says: the job's own fault."""

    reason = "bad_input"


class InputUnavailableError(ExecutorError):
    """A URL input this worker could not fetch now: another worker, or a later try, may."""

    reason = "input_unavailable"


def global_address(address: str) -> bool:
    """Whether ``address`` is on the public internet (not loopback, private, link-local,
    shared, reserved, multicast or unspecified); an IPv6 address that carries an IPv4 one
    (mapped, 6to4, NAT64) is judged by that, since a gateway may route it there."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        else:
            ip = ip.ipv4_mapped or ip.sixtofour or ip
    return ip.is_global and not ip.is_multicast


@dataclass
class InputCache:
    root: Path
    max_bytes: int = 20 << 30  # the whole cache; pinned files may overshoot it while used
    file_max_bytes: int = 8 << 30
    allow_private: bool = False
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    fetch_timeout_s: float = 3600.0
    # The CAs https fetches are verified against (None: httpx's default, certifi's bundle).
    tls: ssl.SSLContext | None = None
    _pins: Counter[str] = field(default_factory=Counter, init=False)
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary, init=False
    )

    def __post_init__(self) -> None:
        self.files = self.root / "sha256"
        self.tmp = self.root / "tmp"
        self.files.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.iterdir():  # fetches a previous run of the worker left unfinished
            with contextlib.suppress(OSError):
                stale.unlink()

    @classmethod
    def from_settings(cls, settings: WorkerInputSettings, home: Path) -> InputCache:
        return cls(
            root=settings.cache_dir or home / CACHE_DIR,
            max_bytes=settings.cache_max_bytes,
            file_max_bytes=settings.max_bytes,
            allow_private=settings.allow_private,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            fetch_timeout_s=settings.fetch_timeout_s,
        )

    def path_of(self, sha256: str) -> Path:
        return self.files / sha256

    @contextlib.asynccontextmanager
    async def pinned(self, inputs: Mapping[str, InputFile]) -> AsyncIterator[dict[str, Path]]:
        """Every URL input of ``inputs`` in the cache, kept there until the block ends:
        input path → its cached file."""
        digests = {name: file.sha256 for name, file in inputs.items() if file.sha256 is not None}
        self._pins.update(digests.values())
        try:
            found = {}
            for name, file in inputs.items():
                if file.sha256 is not None:
                    found[name] = await self.fetch(file)
            yield found
        finally:
            self._pins.subtract(digests.values())
            self._pins += Counter()  # drops the digests no one holds any more

    async def fetch(self, file: InputFile) -> Path:
        """The cached file of a URL input, fetched if the cache does not hold its digest."""
        if file.url is None or file.sha256 is None:
            raise ValueError("not a url input")
        if file.size is not None and file.size > self.file_max_bytes:
            raise InputFetchError(
                f"input of {file.size} bytes is over this worker's {self.file_max_bytes}",
                url=shown(file.url),
            )
        lock = self._locks.setdefault(file.sha256, asyncio.Lock())
        async with lock:
            path = self.path_of(file.sha256)
            if await asyncio.to_thread(_touch, path):
                _check_size(file, path.stat().st_size)
                log.info("input cache hit", extra={"sha256": file.sha256})
                return path
            try:
                async with asyncio.timeout(self.fetch_timeout_s):
                    size = await self._download(file, path)
            except TimeoutError as exc:
                raise InputUnavailableError(
                    f"fetching {shown(file.url)} took over {self.fetch_timeout_s:g} s",
                    url=shown(file.url),
                ) from exc
            log.info("input fetched", extra={"sha256": file.sha256, "bytes": size})
        await self.evict()
        return path

    def discard(self, sha256: str) -> None:
        """Drop a cached file found changed (it is fetched again when next asked for)."""
        log.error("a cached input no longer matches its digest", extra={"sha256": sha256})
        with contextlib.suppress(FileNotFoundError):
            self.path_of(sha256).unlink()

    async def evict(self) -> list[str]:
        """Remove least recently used files until the cache is within ``max_bytes``, sparing
        pinned ones; returns the digests removed."""
        entries = await asyncio.to_thread(self._entries)
        total = sum(size for _, _, size in entries)
        removed = []
        # Pins are checked and files removed in one step of the loop (no await between): a
        # job that pins a digest after this removed it finds it gone and fetches it again.
        for _, name, size in sorted(entries):
            if total <= self.max_bytes:
                break
            if self._pins[name] > 0:
                continue
            with contextlib.suppress(FileNotFoundError):
                (self.files / name).unlink()
            total -= size
            removed.append(name)
        if removed:
            log.info("input cache evicted", extra={"files": len(removed), "bytes_left": total})
        return removed

    def _entries(self) -> list[tuple[int, str, int]]:
        """(mtime, digest, size) of every cached file."""
        entries = []
        for entry in os.scandir(self.files):
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat(follow_symlinks=False)
                entries.append((stat.st_mtime_ns, entry.name, stat.st_size))
        return entries

    async def _download(self, file: InputFile, path: Path) -> int:
        assert file.url is not None and file.sha256 is not None
        timeout = httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)
        temp = self.tmp / f"{file.sha256[:16]}-{secrets.token_hex(8)}"
        try:
            verify = self.tls if self.tls is not None else True
            async with httpx.AsyncClient(
                timeout=timeout, follow_redirects=False, verify=verify, trust_env=False
            ) as client:
                size, digest = await self._stream(client, file, temp)
            if digest != file.sha256:
                raise InputFetchError(
                    f"input from {shown(file.url)} has sha256 {digest}, not the {file.sha256} "
                    "the spec gives",
                    url=shown(file.url),
                )
            _check_size(file, size)
            os.chmod(temp, 0o444)  # the cache's files are never written again
            os.replace(temp, path)
            return size
        except httpx.TimeoutException as exc:
            raise InputUnavailableError(
                f"fetching {shown(file.url)} timed out", url=shown(file.url)
            ) from exc
        except httpx.HTTPError as exc:
            raise InputUnavailableError(
                f"cannot fetch {shown(file.url)}: {type(exc).__name__}: {exc}", url=shown(file.url)
            ) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    async def _stream(
        self, client: httpx.AsyncClient, file: InputFile, temp: Path
    ) -> tuple[int, str]:
        assert file.url is not None
        url = file.url
        limit = file.size if file.size is not None else self.file_max_bytes
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._send(client, url)
            try:
                if response.is_redirect:
                    url = _redirect_target(url, response)
                    continue
                _check_status(url, response)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise _too_big(file, int(declared), limit)
                digest = hashlib.sha256()
                size = 0
                with temp.open("xb") as out:
                    # Small writes into the page cache and hashing that releases the GIL:
                    # cheap enough to do between the loop's other work.
                    async for chunk in response.aiter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > limit:
                            raise _too_big(file, size, limit)
                        digest.update(chunk)
                        out.write(chunk)
                return size, digest.hexdigest()
            finally:
                await response.aclose()
        raise InputFetchError(
            f"{shown(file.url)} redirects more than {MAX_REDIRECTS} times", url=shown(url)
        )

    async def _send(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        """A GET of ``url`` sent to an address its host was checked at (see the module
        docstring), naming the host in the Host header and, for https, in TLS; each address
        tried in turn (IPv4 first) until one connects."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        addresses = await self._addresses(url, host, parts.port or _PORTS[parts.scheme])
        auth = None
        if parts.username is not None:
            auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
        for n, address in enumerate(addresses, start=1):
            netloc = f"[{address}]" if ":" in address else address
            if parts.port is not None:
                netloc = f"{netloc}:{parts.port}"
            request = client.build_request(
                "GET",
                urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
                headers={"Host": parts.netloc.rsplit("@", 1)[-1], "Accept-Encoding": "identity"},
                extensions={"sni_hostname": host} if parts.scheme == "https" else {},
            )
            try:
                return await client.send(request, auth=auth, stream=True)
            except httpx.ConnectError:
                if n == len(addresses):
                    raise
        raise AssertionError("unreachable: _addresses returns at least one")

    async def _addresses(self, url: str, host: str, port: int) -> list[str]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise InputUnavailableError(f"cannot resolve the host of {shown(url)}: {exc}") from exc
        found = {str(info[4][0]): info[0] for info in infos}  # in order, once each
        addresses = sorted(found, key=lambda a: found[a] != socket.AF_INET)[:_MAX_ADDRESSES]
        if not addresses:
            raise InputUnavailableError(f"the host of {shown(url)} has no address")
        if not self.allow_private:
            refused = [a for a in found if not global_address(a)]
            if refused:
                raise InputFetchError(
                    f"{shown(url)} resolves to {refused[0]}, not a public address: workers do not "
                    "fetch from loopback, private or link-local networks",
                    url=shown(url),
                )
        return addresses


def shown(url: str | None) -> str:
    """``url`` as errors and logs show it: without credentials, query or fragment, which
    often carry a token (a presigned URL's signature)."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return "(an unreadable url)"
    host = parts.netloc.rsplit("@", 1)[-1]
    hidden = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path[:200]}{hidden}"


def _touch(path: Path) -> bool:
    """Mark ``path`` just used (the LRU clock); False when the cache does not hold it."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _check_size(file: InputFile, size: int) -> None:
    if file.size is not None and size != file.size:
        raise InputFetchError(
            f"input from {shown(file.url)} has {size} bytes, not the {file.size} the spec gives",
            url=shown(file.url),
        )


def _too_big(file: InputFile, size: int, limit: int) -> InputFetchError:
    whose = "the spec's size" if file.size is not None else "this worker's limit"
    return InputFetchError(
        f"input from {shown(file.url)} has over {limit} bytes ({whose}; {size} seen)",
        url=shown(file.url),
    )


def _check_status(url: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    what = f"{shown(url)} answered {response.status_code} {response.reason_phrase}"
    if response.status_code >= 500 or response.status_code in _PASSING_STATUS:
        raise InputUnavailableError(what, url=shown(url))
    raise InputFetchError(what, url=shown(url))


def _redirect_target(url: str, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise InputFetchError(f"{shown(url)} redirects without a Location", url=shown(url))
    target = urljoin(url, location)
    try:
        return check_input_url(target)
    except ValueError as exc:
        raise InputFetchError(
            f"{shown(url)} redirects to {shown(target)!r}: {exc}", url=shown(url)
        ) from exc
