"""Service replicas on the worker: the port a replica serves HTTP on.

The worker picks a free port, hands it to the program as ``PORT`` and tells the miner,
which publishes ``<worker address>:<port>`` to the gateway. The port is found by binding
port 0; another program could take it before the replica binds it, in which case the
replica fails to start and the gateway replaces it.
"""

from __future__ import annotations

import socket

from byteleap.net.messages import JobRequest, JobServing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def with_free_port(job: JobRequest) -> tuple[JobRequest, int | None]:
    """The request with ``PORT`` set when it is a service replica, and that port."""
    if not job.serve:
        return job, None
    port = free_port()
    spec = job.spec.model_copy(update={"env": {**job.spec.env, "PORT": str(port)}})
    return job.model_copy(update={"spec": spec}), port


def serving_message(job: JobRequest, port: int) -> str:
    return JobServing(job_id=job.job_id, port=port).model_dump_json()
