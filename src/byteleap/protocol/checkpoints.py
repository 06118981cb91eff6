"""Checkpoints: a job's named directory, sent whole by its worker while it runs, kept by the
gateway, and written back into the same directory before a retried attempt starts.

A checkpoint set travels as one message (worker → miner, miner → gateway) and is given back
as inline inputs of the next attempt's spec. So it is bounded by what a spec may carry
inline: a miner reads at most 1 MiB of one request, the spec's own argv, env and inputs may
take 768 KiB of it, and base64 adds a third — ``MAX_CHECKPOINT_BYTES`` of files leaves room.
A set is checked as a whole (every file's size and sha256, the total, the paths) wherever it
is parsed, so a half-sent or altered set is never kept, never served.
"""

from __future__ import annotations

#: The most bytes of files one checkpoint set holds (see the module's note on why).
MAX_CHECKPOINT_BYTES = 128 << 10
MAX_CHECKPOINT_FILES = 32
#: How often a worker looks for a changed checkpoint while its job runs.
CHECKPOINT_POLL_S = 2.0
