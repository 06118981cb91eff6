"""The `local` chain adapter: an embedded devnet chain.

``service`` is the HTTP service behind ``byteleap chain serve`` (state in one SQLite
file, see ``state``; consensus math in ``yuma``); ``client.LocalChain`` implements
:class:`byteleap.chain.port.ChainPort` against it.
"""

from byteleap.chain.local.client import LocalChain

__all__ = ["LocalChain"]
