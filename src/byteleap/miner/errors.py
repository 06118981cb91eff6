"""Miner errors.

MinerError
 ├── UnknownWorker      no such worker id                       (reason: unknown_worker)
 ├── UnknownChallenge   no committed challenge with that id     (reason: unknown_challenge)
 ├── UnknownBatch       no open challenge batch with that id    (reason: unknown_batch)
 ├── TooManyBatches     the caller holds too many open batches  (reason: too_many_batches)
 ├── UnknownJob         no job with that id on this miner       (reason: unknown_job)
 ├── JobConflict        another attempt of the job is running   (reason: job_running)
 ├── UnknownLease       no such lease for the calling gateway   (reason: unknown_lease)
 ├── LeaseRefused       the lease or receipt cannot be accepted (reason: lease_refused)
 ├── IllegalTransition  the worker's state does not allow it    (reason: illegal_transition)
 ├── WorkerUnavailable  offline, revoked or busy                (reason: worker_unavailable)
 ├── WorkerLost         the link dropped while work was pending (reason: worker_lost)
 ├── WorkerTimeout      the worker did not answer in time       (reason: timeout)
 ├── TokenRejected      unknown, used or expired enrollment     (reason: token_rejected)
 └── ImpossibleHardware the worker claims hardware that cannot be (reason: impossible_hardware)
"""

from __future__ import annotations

from byteleap.errors import ByteleapError


class MinerError(ByteleapError):
    reason = "miner"


class UnknownWorker(MinerError):
    reason = "unknown_worker"


class UnknownChallenge(MinerError):
    reason = "unknown_challenge"


class UnknownBatch(MinerError):
    reason = "unknown_batch"


class TooManyBatches(MinerError):
    reason = "too_many_batches"


class UnknownJob(MinerError):
    reason = "unknown_job"


class JobConflict(MinerError):
    reason = "job_running"


class UnknownLease(MinerError):
    reason = "unknown_lease"


class LeaseRefused(MinerError):
    reason = "lease_refused"


class IllegalTransition(MinerError):
    reason = "illegal_transition"


class WorkerUnavailable(MinerError):
    reason = "worker_unavailable"


class WorkerLost(MinerError):
    reason = "worker_lost"


class WorkerTimeout(MinerError):
    reason = "timeout"


class TokenRejected(MinerError):
    reason = "token_rejected"


class ImpossibleHardware(MinerError):
    reason = "impossible_hardware"
