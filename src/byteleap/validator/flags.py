"""Which workers earn nothing, and why: the one rule the validator's scores and the network
simulation both apply. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set

from byteleap.protocol.gpu_models import gpu_reading
from byteleap.protocol.identity import WorkerIdentity, duplicated_workers
from byteleap.scoring import WorkerKey

__all__ = ["worker_flags"]


def worker_flags(
    identities: Iterable[WorkerIdentity],
    gpu_claims: Mapping[WorkerKey, Sequence[str]],
    passes: Mapping[WorkerKey, Sequence[float]],
    wrong_output: Set[str] = frozenset(),
) -> dict[WorkerKey, str]:
    """Each flagged worker with its reason: a key or GPU shared with another worker
    (``shared_key``, ``shared_gpu``), a GPU whose verified throughput (``passes``) refutes its
    claimed model (``model_mismatch``: sized for the claim, it should measure inside that
    model's band), or a miner caught returning a customer wrong results (``wrong_output``).

    ``gpu_claims`` holds each worker's claimed GPU models (none for a CPU worker); the first
    reason found is the one given.
    """
    flagged = dict(duplicated_workers(identities))
    for key, claimed in gpu_claims.items():
        if key[0] in wrong_output:
            flagged.setdefault(key, "wrong_output")
        elif claimed and key not in flagged:
            if gpu_reading(claimed, passes.get(key, ())).mismatch:
                flagged[key] = "model_mismatch"
    return flagged
