"""``wg setconf``/``wg syncconf`` text for one member, pure.

Every value comes from a validated model (base64 keys, ``ip:port``, a /32), so no value can
carry a newline or a second directive; `render_config` still refuses one, as a last guard.
The overlay address is not part of this format (``ip`` sets it); the routes are the
interface's /24 plus WireGuard's per-peer allowed-ips.
"""

from __future__ import annotations

from byteleap.net.wireguard.messages import PeerSet


def _line(key: str, value: str | int) -> str:
    text = str(value)
    if any(c in text for c in "\r\n#") or not text.isprintable():
        raise ValueError(f"refusing to render {key} with a newline, comment or control character")
    return f"{key} = {text}"


def render_config(
    *, private_key: str, listen_port: int, peer_set: PeerSet | None, keepalive_s: int = 25
) -> str:
    """The interface's whole configuration; ``peer_set`` None means no peers at all."""
    lines = ["[Interface]", _line("PrivateKey", private_key), _line("ListenPort", listen_port)]
    for peer in () if peer_set is None else peer_set.peers:
        lines += [
            "",
            "[Peer]",
            _line("PublicKey", peer.public_key),
            _line("Endpoint", peer.endpoint),
            _line("AllowedIPs", peer.allowed_ip),
        ]
        if keepalive_s:
            lines.append(_line("PersistentKeepalive", keepalive_s))
    return "\n".join(lines) + "\n"
