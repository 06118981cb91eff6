"""The root of every byteleap error.

Each package defines one base under this root (``ChainError``, ``StoreError``,
``ProofError`` …) and its own subclasses. Every error carries a machine-readable
``reason`` and a ``context`` dict so services can map it to a status code and
logs can be queried without parsing messages.

    ByteleapError
     ├── ConfigError          (config.py)
     ├── ChainError           (chain/)
     ├── StoreError           (store/)
     └── ProofError           (proof/)
"""

from __future__ import annotations

from typing import Any


class ByteleapError(Exception):
    """Base of all byteleap errors: a message, a stable reason code and context."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None, **context: Any) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        return self.args[0] if self.args else self.reason
