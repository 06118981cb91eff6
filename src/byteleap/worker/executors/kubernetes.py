"""The Kubernetes executor: runs a job as a ``batch/v1 Job`` in a cluster, and service replicas
as a Deployment behind a Service, through the official ``kubernetes`` client.

The client is synchronous; short API calls run in ``asyncio.to_thread`` and the two long ones
(the pod watch and the log follow) each get their own daemon thread, so they never starve the
default executor's few threads. Both hand what they read to the event loop with
``call_soon_threadsafe``.

Lifecycle of a job: the manifests (``k8s_manifests``) are rendered and checked before any API
call; the objects are created in order (inputs ConfigMap, deny-all NetworkPolicy when the job
asks for isolation, Job); ``start`` returns once the pod's container runs or ran, and fails
with ``StartFailedError`` on an image that cannot be pulled, a broken spec, or no start within
``start_timeout_s``. The timeout counts from the container's start (the Job's own
``activeDeadlineSeconds`` is only a backstop that also covers the pull). On timeout or cancel,
and after every end, the Job is deleted with ``propagationPolicy=Background`` and the
ConfigMap and NetworkPolicy with it, so nothing outlives the execution.

What differs from the process and container executors: Kubernetes merges the container's
stdout and stderr into one log, which arrives here as ``stdout``; artifacts stay in the pod's
scratch volume and are not collected (``result.artifacts`` is empty); CPU time cannot be
limited (``cpu_time_limit_s`` is refused). GPU count is ``len(spec.gpus)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from byteleap.protocol.execution import (
    FEATURE_CHECKPOINTS,
    FEATURE_URL_INPUTS,
    ExecutionResult,
    ExecutionSpec,
)
from byteleap.worker.executors.base import check_spec
from byteleap.worker.executors.errors import StartFailedError
from byteleap.worker.executors.k8s_cluster import KubernetesCluster, load_api_client
from byteleap.worker.executors.k8s_manifests import render_job, render_service_replicas
from byteleap.worker.executors.k8s_settings import (
    LABEL_EXECUTION,
    KubernetesOptions,
    KubernetesSettings,
    Manifest,
    ServiceReplicaSpec,
    dns1123_name,
    label_value,
)
from byteleap.worker.executors.k8s_status import PodView, ending, pod_view
from byteleap.worker.executors.output import LineSplitter, OutputLog
from byteleap.worker.executors.supervised import SupervisedExecution

logger = logging.getLogger(__name__)

_DRAIN_S = 3.0  # after the end, how long the log follow may take to deliver the rest


class KubernetesExecutor:
    """Runs a spec as a Kubernetes Job (see the module docstring)."""

    name: ClassVar[str] = "kubernetes"
    unsupported: ClassVar[dict[str, str]] = {
        FEATURE_URL_INPUTS: "inputs reach a pod through a ConfigMap; a URL input is fetched "
        "and cached by the process and container executors only",
        FEATURE_CHECKPOINTS: "the job's files live in its pod, where the worker cannot watch "
        "its checkpoint dir",
    }

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        *,
        cluster: KubernetesCluster | None = None,
    ) -> None:
        self.settings = settings if settings is not None else KubernetesSettings.from_env()
        self._cluster = cluster
        self._connecting = asyncio.Lock()

    async def cluster(self) -> KubernetesCluster:
        async with self._connecting:
            if self._cluster is None:
                api = await asyncio.to_thread(load_api_client, self.settings)
                self._cluster = KubernetesCluster(api, self.settings)
            return self._cluster

    async def start(
        self, spec: ExecutionSpec, workdir: Path, options: KubernetesOptions | None = None
    ) -> KubernetesExecution:
        """``workdir`` is unused: the job's files live in the pod, not on this host."""
        spec = check_spec(spec, self.unsupported)
        options = KubernetesOptions.parse((options or KubernetesOptions()).model_dump())
        execution_id = uuid.uuid4().hex[:16]
        manifests = render_job(spec, options, self.settings, execution_id=execution_id)
        cluster = await self.cluster()
        execution = KubernetesExecution(cluster, spec, execution_id, manifests)
        await execution.run()
        return execution

    async def apply_service(self, spec: ServiceReplicaSpec) -> str:
        """Create or update a service's Deployment and Service; its in-cluster address."""
        cluster = await self.cluster()
        for manifest in render_service_replicas(spec, self.settings):
            await asyncio.to_thread(cluster.apply, manifest)
        name = dns1123_name(spec.service_id)
        return f"{name}.{self.settings.namespace}.svc:{spec.port}"

    async def service_replicas(self, service_id: str) -> tuple[int, int] | None:
        """(desired, ready) replicas of a service's Deployment; None when it does not exist."""
        cluster = await self.cluster()
        deployment = await asyncio.to_thread(cluster.read, "Deployment", dns1123_name(service_id))
        if deployment is None:
            return None
        status = deployment.get("status") or {}
        return deployment["spec"].get("replicas", 1), status.get("readyReplicas", 0)

    async def delete_service(self, service_id: str) -> None:
        cluster = await self.cluster()
        for kind in ("Service", "Deployment"):
            await asyncio.to_thread(cluster.delete, kind, dns1123_name(service_id))


class KubernetesExecution(SupervisedExecution):
    """One Job, the watch on its pod and the follow on its log."""

    def __init__(
        self,
        cluster: KubernetesCluster,
        spec: ExecutionSpec,
        execution_id: str,
        manifests: list[Manifest],
    ) -> None:
        super().__init__(OutputLog(spec.max_output_bytes))
        self.cluster = cluster
        self.execution_id = execution_id
        self.name = manifests[-1]["metadata"]["name"]
        self._spec = spec
        self._manifests = manifests
        self._settings = cluster.settings
        self._splitter = LineSplitter("stdout", self._log)
        self._pod: PodView | None = None
        self._pod_changed = asyncio.Event()
        self._pod_gone = False
        self._threads_stop = threading.Event()
        self._log_done: asyncio.Future[None] | None = None
        self._started_at = datetime.now(UTC)

    @property
    def pid(self) -> int:
        """No local process runs the program; 0 says so."""
        return 0

    async def run(self) -> None:
        """Create the objects and return once the container runs (or ran)."""
        loop = asyncio.get_running_loop()
        try:
            await self._create_all()
            selector = f"{LABEL_EXECUTION}={label_value(self.execution_id)}"
            self._thread(self.cluster.watch_pods, selector, self._from_thread(loop, self._on_pod))
            await self._until_started()
        except BaseException:
            await asyncio.shield(self._delete_all())
            raise
        self._started_at = datetime.now(UTC)
        self._follow_log(loop)
        self._task = asyncio.create_task(self._supervise(), name=f"execution-{self.name}")

    def _thread(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(
            target=target, args=(*args, self._threads_stop), daemon=True, name=self.name
        ).start()

    def _from_thread(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., None]) -> Any:
        def call(*args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a late event
                loop.call_soon_threadsafe(fn, *args)

        return call

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._pod_gone = True
        else:
            self._pod = pod_view(pod)
        self._pod_changed.set()

    async def _next_pod_change(self, within_s: float) -> None:
        """Wait for the next pod event. Call it right after reading the state, with no await
        in between: the clear happens now, not when the coroutine first runs."""
        changed = self._pod_change()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed, within_s)

    def _pod_change(self) -> Coroutine[Any, Any, bool]:
        self._pod_changed.clear()
        return self._pod_changed.wait()

    async def _create_all(self) -> None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        for manifest in self._manifests:
            try:
                await asyncio.to_thread(self.cluster.create, manifest)
            except ApiException as exc:
                raise StartFailedError(
                    f"cannot create {manifest['kind']} {self.name}: {exc.reason} {exc.body}",
                    kind=manifest["kind"],
                ) from exc
            except (HTTPError, OSError) as exc:
                raise StartFailedError(
                    f"cannot reach the cluster to create {self.name}: {exc}", kind=manifest["kind"]
                ) from exc

    async def _until_started(self) -> None:
        deadline = asyncio.get_running_loop().time() + self._settings.start_timeout_s
        while True:
            view = self._pod
            if view is not None and view.started:
                return
            if view is not None and (why := view.start_failure) is not None:
                raise StartFailedError(f"job {self.name} did not start: {why}", job=self.name)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                why = (view.unschedulable or view.waiting_reason) if view else "no pod appeared"
                raise StartFailedError(
                    f"job {self.name} did not start in {self._settings.start_timeout_s:g} s: "
                    f"{why or 'still pending'}",
                    job=self.name,
                )
            await self._next_pod_change(left)

    def _follow_log(self, loop: asyncio.AbstractEventLoop) -> None:
        done: asyncio.Future[None] = loop.create_future()
        self._log_done = done

        def mark_done() -> None:
            if not done.done():
                done.set_result(None)

        feed = self._from_thread(loop, self._splitter.feed)
        finish = self._from_thread(loop, mark_done)
        assert self._pod is not None

        def follow(pod: str, stop: threading.Event) -> None:
            try:
                self.cluster.follow_log(pod, feed, stop)
            except Exception as exc:  # the result still comes from the pod
                logger.warning("log follow of %s ended: %r", self.name, exc)
            finally:
                finish()

        self._thread(follow, self._pod.name)

    async def _supervise(self) -> ExecutionResult:
        try:
            if not await self._ended_in_time():
                await asyncio.to_thread(self.cluster.delete, "Job", self.name)
                await self._until_ended(self._settings.kill_grace_s + 10.0)
            if self._log_done is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._log_done), _DRAIN_S)
        finally:
            self._threads_stop.set()
            await asyncio.shield(self._delete_all())
            self._splitter.flush()
            self._log.close()
        end = ending(self._pod, cause=self._cause, cause_detail=self._detail)
        if self._pod_gone and self._cause is None and not (self._pod and self._pod.ended):
            end = ending(None, cause=None, cause_detail="")
        return self._log.result(
            code=end.code,
            started_at=self._started_at,
            artifacts=[],
            killed_by=end.killed_by,
            detail=end.detail,
            failed=end.failed,
        )

    async def _ended_in_time(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._spec.timeout_s
        while not self._ended():
            if self._stop.is_set():
                return False
            left = deadline - loop.time()
            if left <= 0:
                self._request_stop("timeout", f"timed out after {self._spec.timeout_s:g} s")
                return False
            stopped = asyncio.ensure_future(self._stop.wait())
            changed = asyncio.ensure_future(self._pod_change())
            try:
                await asyncio.wait(
                    {stopped, changed}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopped.cancel()
                changed.cancel()
        return True

    def _ended(self) -> bool:
        return self._pod_gone or (self._pod is not None and self._pod.ended)

    async def _until_ended(self, within_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while not self._ended() and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await self._next_pod_change(left)

    async def _delete_all(self) -> None:
        for manifest in reversed(self._manifests):
            try:
                await asyncio.to_thread(self.cluster.delete, manifest["kind"], self.name)
            except Exception as exc:  # the others must still be deleted
                logger.warning(
                    "cannot delete", extra={"kind": manifest["kind"], "obj": self.name, "e": exc}
                )
