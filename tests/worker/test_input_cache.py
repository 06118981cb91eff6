"""The worker's input cache against a real HTTP server on 127.0.0.1: one fetch per digest, a
wrong or oversized file refused with nothing kept, LRU eviction that spares pinned files, and
no fetch from a private address unless allowed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from byteleap.config import WorkerInputSettings
from byteleap.gateway.dispatch import _THE_JOBS_OWN_FAULT
from byteleap.protocol.execution import InputFile
from byteleap.worker.input_cache import (
    InputCache,
    InputFetchError,
    InputUnavailableError,
    global_address,
)
from byteleap.worker.jobs import refusal
from file_server import FileServer, serving

A, B, C = b"a" * 100, b"b" * 100, b"c" * 100


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving(FileServer(files={"a": A, "b": B, "c": C})) as running:
        yield running


def cache_at(tmp_path: Path, tls: ssl.SSLContext | None = None, **options: object) -> InputCache:
    settings = WorkerInputSettings.model_validate({"allow_private": True, **options})
    cache = InputCache.from_settings(settings, tmp_path)
    cache.tls = tls
    return cache


def url_input(server: FileServer, path: str, data: bytes, size: int | None = None) -> InputFile:
    return InputFile.from_url(server.url(path), digest(data), size=size)


def held(cache: InputCache) -> set[bytes]:
    return {p.read_bytes() for p in cache.files.iterdir()}


def nothing_kept(cache: InputCache) -> bool:
    return not any(cache.files.iterdir()) and not any(cache.tmp.iterdir())


async def test_a_digest_is_fetched_once_then_served_from_the_cache(
    tmp_path: Path, server: FileServer
) -> None:
    cache = cache_at(tmp_path)
    path = await cache.fetch(url_input(server, "/f/a", A, size=100))
    assert path == tmp_path / "input-cache" / "sha256" / digest(A)
    assert path.read_bytes() == A and server.total == 1
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # read-only: jobs get copies

    # Another URL with the same digest: the cache answers, the server is not asked.
    again = await cache.fetch(InputFile.from_url(server.url("/raw/a"), digest(A)))
    assert again == path and server.total == 1
    async with cache.pinned({"x": url_input(server, "/f/a", A)}) as fetched:
        assert fetched == {"x": path}
    assert server.total == 1


async def test_a_fresh_cache_on_the_same_dir_keeps_what_was_fetched(
    tmp_path: Path, server: FileServer
) -> None:
    await cache_at(tmp_path).fetch(url_input(server, "/f/a", A))
    (tmp_path / "input-cache" / "tmp" / "left-by-a-crash").write_bytes(b"partial")
    restarted = cache_at(tmp_path)  # a worker restart
    await restarted.fetch(url_input(server, "/f/a", A))
    assert server.total == 1 and not any(restarted.tmp.iterdir())


async def test_concurrent_requests_for_one_digest_fetch_it_once(
    tmp_path: Path, server: FileServer
) -> None:
    server.delay_s = 0.3
    cache = cache_at(tmp_path)
    paths = await asyncio.gather(*(cache.fetch(url_input(server, "/f/b", B)) for _ in range(6)))
    assert len(set(paths)) == 1 and paths[0].read_bytes() == B
    assert server.total == 1


async def test_a_redirect_within_http_is_followed(tmp_path: Path, server: FileServer) -> None:
    cache = cache_at(tmp_path)
    path = await cache.fetch(url_input(server, "/to/f/c", C))
    assert path.read_bytes() == C and server.requests == {"/to/f/c": 1, "/f/c": 1}


@pytest.mark.adversarial
async def test_a_wrong_digest_is_refused_and_nothing_kept(
    tmp_path: Path, server: FileServer
) -> None:
    cache = cache_at(tmp_path)
    with pytest.raises(InputFetchError, match="has sha256") as caught:
        await cache.fetch(InputFile.from_url(server.url("/f/a"), digest(B)))
    assert caught.value.reason == "bad_input"
    assert nothing_kept(cache)
    # It would fail the same on every worker: the gateway must not try it elsewhere.
    refused = refusal("job_input_01", caught.value)
    assert f"{refused.reason}: {refused.detail}".startswith(_THE_JOBS_OWN_FAULT)


@pytest.mark.adversarial
@pytest.mark.parametrize("path", ["/f/a", "/raw/a"])  # declared length, or none
async def test_a_file_over_the_workers_limit_is_refused(
    tmp_path: Path, server: FileServer, path: str
) -> None:
    cache = cache_at(tmp_path, max_bytes=99)
    with pytest.raises(InputFetchError, match="over 99 bytes"):
        await cache.fetch(url_input(server, path, A))
    assert nothing_kept(cache)


@pytest.mark.adversarial
async def test_a_size_the_spec_gets_wrong_is_refused(tmp_path: Path, server: FileServer) -> None:
    cache = cache_at(tmp_path)
    with pytest.raises(InputFetchError, match="over 50 bytes"):
        await cache.fetch(url_input(server, "/raw/a", A, size=50))
    with pytest.raises(InputFetchError, match="has 100 bytes, not the 150"):
        await cache.fetch(url_input(server, "/f/a", A, size=150))
    assert nothing_kept(cache)
    # Announced over the limit: refused before anything is asked of the server.
    small = cache_at(tmp_path / "small", max_bytes=10)
    with pytest.raises(InputFetchError, match="over this worker's 10"):
        await small.fetch(url_input(server, "/f/a", A, size=100))
    assert server.total == 2


@pytest.mark.adversarial
async def test_what_the_server_refuses_says_whose_fault_it_is(
    tmp_path: Path, server: FileServer
) -> None:
    cache = cache_at(tmp_path)
    with pytest.raises(InputFetchError, match="404"):
        await cache.fetch(url_input(server, "/f/missing", A))
    with pytest.raises(InputFetchError, match="410"):
        await cache.fetch(url_input(server, "/status/410", A))
    for passing in ("/status/503", "/status/429"):  # another worker, or later, may get it
        with pytest.raises(InputUnavailableError) as caught:
            await cache.fetch(url_input(server, passing, A))
        assert caught.value.reason == "input_unavailable"
        assert not f"{caught.value.reason}:".startswith(_THE_JOBS_OWN_FAULT)
    assert nothing_kept(cache)


@pytest.mark.adversarial
async def test_redirects_are_bounded_and_stay_in_http(tmp_path: Path, server: FileServer) -> None:
    cache = cache_at(tmp_path)
    with pytest.raises(InputFetchError, match="must be http or https"):
        await cache.fetch(url_input(server, "/to/file:///etc/passwd", A))
    loop = "/to" * 8 + "/f/a"
    with pytest.raises(InputFetchError, match="redirects more than 5 times"):
        await cache.fetch(url_input(server, loop, A))
    assert nothing_kept(cache)


@pytest.mark.adversarial
async def test_a_closed_port_is_unavailable_not_the_jobs_fault(tmp_path: Path) -> None:
    with serving(FileServer()) as gone:
        url = gone.url("/f/a")
    with pytest.raises(InputUnavailableError, match="cannot fetch"):
        await cache_at(tmp_path).fetch(InputFile.from_url(url, digest(A)))


@pytest.mark.adversarial
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_refused_by_default(
    tmp_path: Path, server: FileServer, host: str
) -> None:
    cache = InputCache.from_settings(WorkerInputSettings(), tmp_path)
    assert not cache.allow_private
    with pytest.raises(InputFetchError, match="not a public address"):
        await cache.fetch(InputFile.from_url(server.url("/f/a", host=host), digest(A)))
    assert server.total == 0 and nothing_kept(cache)


@pytest.mark.adversarial
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
    ],
)
def test_only_global_addresses_are_global(address: str) -> None:
    assert not global_address(address)


def test_public_addresses_are_global() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1::1", "64:ff9b::5db8:d822"):
        assert global_address(address), address


async def test_the_least_recently_used_file_goes_first(tmp_path: Path, server: FileServer) -> None:
    cache = cache_at(tmp_path)
    cache.max_bytes = 250  # room for two of the 100-byte files
    # File timestamps tick in coarse steps (a few ms): the pauses keep their order certain.
    await cache.fetch(url_input(server, "/f/a", A))
    await asyncio.sleep(0.05)
    await cache.fetch(url_input(server, "/f/b", B))
    await asyncio.sleep(0.05)
    await cache.fetch(url_input(server, "/f/a", A))  # a hit: a is now the newer
    await asyncio.sleep(0.05)
    await cache.fetch(url_input(server, "/f/c", C))
    assert held(cache) == {A, C}
    assert server.total == 3


async def test_a_pinned_file_is_never_evicted(tmp_path: Path, server: FileServer) -> None:
    cache = cache_at(tmp_path)
    cache.max_bytes = 150  # room for one
    async with cache.pinned({"a": url_input(server, "/f/a", A)}) as fetched:
        await asyncio.sleep(0.05)
        await cache.fetch(url_input(server, "/f/b", B))
        # a is the oldest but a job is being started with it: b goes instead.
        assert held(cache) == {A}
        assert fetched["a"].read_bytes() == A
    await asyncio.sleep(0.05)
    await cache.fetch(url_input(server, "/f/c", C))
    assert held(cache) == {C}


@pytest.mark.adversarial
async def test_errors_do_not_show_a_urls_credentials_or_token(
    tmp_path: Path, server: FileServer
) -> None:
    url = f"http://user:s3cret@127.0.0.1:{server.port}/f/missing?X-Amz-Signature=T0KEN"
    with pytest.raises(InputFetchError) as caught:
        await cache_at(tmp_path).fetch(InputFile.from_url(url, digest(A)))
    shown = f"{caught.value} {caught.value.context}"
    assert "/f/missing" in shown and "404" in shown
    assert "s3cret" not in shown and "T0KEN" not in shown
    assert server.requests == {"/f/missing?X-Amz-Signature=T0KEN": 1}


def localhost_only_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context whose certificate names ``localhost`` and no address, and the CA
    file that verifies it."""
    directory.mkdir(parents=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)

    def cert(subject: str, public: ec.EllipticCurvePublicKey, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.DNSName("localhost")])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(cert("test CA", ca_key.public_key(), True).public_bytes(pem))
    cert_file.write_bytes(cert("localhost", key.public_key(), False).public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file


async def test_https_is_verified_against_the_urls_host_while_sent_to_its_address(
    tmp_path: Path,
) -> None:
    # The request goes to 127.0.0.1 (the address checked), whose name the certificate does
    # not carry: it verifies only because TLS is told the URL's host (SNI and the check).
    server_tls, ca_file = localhost_only_tls(tmp_path / "pki")
    with serving(FileServer(files={"a": A}), tls=server_tls) as server:
        file = InputFile.from_url(server.url("/f/a", host="localhost", scheme="https"), digest(A))
        trusting = cache_at(tmp_path / "one", tls=ssl.create_default_context(cafile=ca_file))
        assert (await trusting.fetch(file)).read_bytes() == A
        by_address = InputFile.from_url(server.url("/f/a", scheme="https"), digest(A))
        with pytest.raises(InputUnavailableError, match="cannot fetch"):
            await cache_at(tmp_path / "two", tls=trusting.tls).fetch(by_address)
        stranger = cache_at(tmp_path / "three")  # certifi's CAs: not this one
        with pytest.raises(InputUnavailableError, match="cannot fetch"):
            await stranger.fetch(file)
        assert nothing_kept(stranger) and server.requests == {"/f/a": 1}


@pytest.mark.adversarial
def test_a_file_limit_over_the_cache_is_a_config_error() -> None:
    # Such a file would be evicted as soon as the job that fetched it had started.
    with pytest.raises(ValueError, match="must not exceed"):
        WorkerInputSettings(max_bytes=2 << 20, cache_max_bytes=1 << 20)
    assert WorkerInputSettings().allow_private is False


@pytest.mark.adversarial
async def test_a_server_that_drips_is_cut_off(tmp_path: Path, server: FileServer) -> None:
    # Each read comes well within read_timeout_s; the whole fetch may not take forever.
    cache = cache_at(tmp_path, fetch_timeout_s=0.5)
    with pytest.raises(InputUnavailableError, match=r"took over 0\.5 s"):
        await cache.fetch(url_input(server, "/drip/a", A))
    assert nothing_kept(cache)
