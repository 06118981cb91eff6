"""TLS identities pinned through the chain.

Every node owns an Ed25519 key and a self-signed certificate for it. The public
key, DER-encoded (SubjectPublicKeyInfo, 44 bytes), is what the node publishes
with its axon as its *neuron certificate*; it fits the chain's certificate field
(at most 64 key bytes) and names the node without any certificate authority.
A client that wants to talk to a node:

1. reads the node's pinned public key from the metagraph,
2. fetches the certificate the node presents (`fetch_pinned_certificate`) and
   refuses it unless its key is the pinned one,
3. builds an SSL context whose only trust anchor is exactly that certificate
   (`pinned_client_context`), so OpenSSL itself rejects any other peer for every
   later connection — a man in the middle is detected, not just encrypted against.

TLS 1.3 only; there is nothing older to talk to.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from byteleap.net.errors import IdentityError, PeerUnreachable, PinMismatch

CERT_FILE = "tls_cert.pem"
KEY_FILE = "tls_key.pem"
_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class TlsIdentity:
    """A node's TLS key and certificate on disk."""

    cert_path: Path
    key_path: Path

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    @property
    def public_key(self) -> bytes:
        """The DER public key published on chain as the neuron certificate."""
        return certificate_public_key(self.certificate)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def certificate_public_key(certificate: x509.Certificate) -> bytes:
    key = certificate.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise PinMismatch("peer certificate does not carry an Ed25519 key")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_or_create_identity(folder: Path, common_name: str = "byteleap-node") -> TlsIdentity:
    """The identity in ``folder``, created on first use (key file mode 0600).

    Two processes may ask at once (a miner starting while a command reads its pin): creation
    holds an exclusive lock on the folder and looks again under it, so one key is made and
    the certificate always matches it (once a CI replica's miner died of a key from one
    process and a certificate from the other)."""
    identity = TlsIdentity(folder / CERT_FILE, folder / KEY_FILE)
    if identity.cert_path.exists() and identity.key_path.exists():
        return _checked(identity)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".tls.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if identity.cert_path.exists() and identity.key_path.exists():
            return _checked(identity)
        _create(identity, common_name)
    return identity


def _checked(identity: TlsIdentity) -> TlsIdentity:
    try:
        identity.certificate  # noqa: B018 - parse once so corruption fails here
    except ValueError as exc:
        raise IdentityError(f"unreadable TLS certificate {identity.cert_path}: {exc}") from None
    return identity


def _create(identity: TlsIdentity, common_name: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        # A self-signed trust anchor: it must be allowed to vouch for itself.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, None)
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    identity.key_path.touch(mode=0o600)
    identity.key_path.write_bytes(key_bytes)
    # The certificate last and whole (renamed into place): once it is there, so is its key.
    partial = identity.cert_path.with_name(identity.cert_path.name + ".partial")
    partial.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    os.replace(partial, identity.cert_path)


def fetch_pinned_certificate(
    host: str, port: int, pinned_public_key: bytes, *, timeout_s: float = 5.0
) -> bytes:
    """The DER certificate the peer presents, if and only if its key is the pinned one."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.minimum_version = ssl.TLSVersion.TLSv1_3
    # Trust is decided below by the pin, not by a CA.
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            probe.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise PeerUnreachable(f"TLS handshake with {host}:{port} failed: {exc}") from None
    if der is None:
        raise PinMismatch(f"{host}:{port} presented no certificate")
    presented = certificate_public_key(x509.load_der_x509_certificate(der))
    if presented != pinned_public_key:
        raise PinMismatch(
            f"{host}:{port} presented key {presented.hex()[:16]}…, "
            f"chain pins {pinned_public_key.hex()[:16]}…",
            host=host,
            port=port,
        )
    return der


def pinned_client_context(certificate_der: bytes) -> ssl.SSLContext:
    """A client context that trusts exactly one certificate and nothing else."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # Nodes are addressed by IP from the metagraph; identity is the pinned key.
    context.check_hostname = False
    context.load_verify_locations(cadata=certificate_der)
    return context


def pinned_context_for(
    host: str, port: int, pinned_public_key: bytes, *, timeout_s: float = 5.0
) -> ssl.SSLContext:
    der = fetch_pinned_certificate(host, port, pinned_public_key, timeout_s=timeout_s)
    return pinned_client_context(der)
