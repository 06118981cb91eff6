"""Errors of the proof package.

ByteleapError
 └── ProofError                 reason "proof_error"
      ├── InexactSizeError      reason "inexact_size": a profile cannot make this n exact
      ├── MalformedMessageError reason "malformed": a message that does not parse
      │    └── OversizedMessageError reason "oversized"
      └── BackendError          reason "backend": a backend/device that is not available
"""

from __future__ import annotations

from byteleap.errors import ByteleapError


class ProofError(ByteleapError):
    """Base of every error raised by ``byteleap.proof``."""

    reason = "proof_error"


class InexactSizeError(ProofError):
    """The profile cannot keep every partial sum of an n×n product exact."""

    reason = "inexact_size"


class MalformedMessageError(ProofError):
    """A wire message that does not parse or breaks a structural rule."""

    reason = "malformed"


class OversizedMessageError(MalformedMessageError):
    """A wire message larger than the caller allows."""

    reason = "oversized"


class BackendError(ProofError):
    """The requested compute backend or device is not usable here."""

    reason = "backend"
