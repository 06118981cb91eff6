"""The Kubernetes API as the executor uses it: loading the cluster config, and the few calls it
makes (create, apply, delete with background propagation, read, watch pods, follow a log),
each bounded in time. The official client is synchronous: callers run these in threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from byteleap.worker.executors.errors import UnavailableExecutorError
from byteleap.worker.executors.k8s_settings import CONTAINER_NAME, KubernetesSettings, Manifest

logger = logging.getLogger(__name__)

_WATCH_WINDOW_S = 10  # a watch call ends after this and is reopened
_RETRY_S = 1.0
_LOG_IDLE_S = 300


def load_api_client(settings: KubernetesSettings) -> Any:
    """An ``ApiClient`` from ``KUBECONFIG`` (or ``~/.kube/config``), else the in-cluster service
    account; ``UnavailableExecutorError`` when there is no cluster to talk to."""
    from kubernetes import client, config  # imported here: a heavy import few workers need

    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        if os.environ.get("KUBECONFIG") or os.path.exists(kubeconfig):
            return config.new_client_from_config(context=settings.context)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
    except (config.ConfigException, OSError, ValueError) as exc:
        raise UnavailableExecutorError(f"cannot load the Kubernetes config: {exc}") from exc
    raise UnavailableExecutorError(
        "no Kubernetes cluster: set KUBECONFIG or run inside a cluster", executor="kubernetes"
    )


class KubernetesCluster:
    """The few API calls the executor makes, by object kind, each bounded in time."""

    def __init__(self, api: Any, settings: KubernetesSettings) -> None:
        from kubernetes import client

        self.api = api
        self.settings = settings
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.networking = client.NetworkingV1Api(api)

    def _api_for(self, kind: str) -> tuple[Any, str]:
        table = {
            "ConfigMap": (self.core, "config_map"),
            "Service": (self.core, "service"),
            "NetworkPolicy": (self.networking, "network_policy"),
            "Job": (self.batch, "job"),
            "Deployment": (self.apps, "deployment"),
        }
        return table[kind]

    def create(self, manifest: Manifest) -> None:
        api, noun = self._api_for(manifest["kind"])
        getattr(api, f"create_namespaced_{noun}")(
            self.settings.namespace, manifest, _request_timeout=self.settings.request_timeout_s
        )

    def apply(self, manifest: Manifest) -> None:
        """Create, or patch what exists (a rolling update for a Deployment)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.create(manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise
            api, noun = self._api_for(manifest["kind"])
            getattr(api, f"patch_namespaced_{noun}")(
                manifest["metadata"]["name"],
                self.settings.namespace,
                manifest,
                _request_timeout=self.settings.request_timeout_s,
            )

    def delete(self, kind: str, name: str) -> bool:
        """Delete in the background (dependents follow); True when gone or already gone."""
        from kubernetes.client.exceptions import ApiException

        api, noun = self._api_for(kind)
        try:
            getattr(api, f"delete_namespaced_{noun}")(
                name,
                self.settings.namespace,
                propagation_policy="Background",
                _request_timeout=self.settings.request_timeout_s,
            )
        except ApiException as exc:
            if exc.status != 404:
                logger.warning("delete failed", extra={"kind": kind, "obj": name, "error": exc})
                return False
        return True

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        api, noun = self._api_for(kind)
        try:
            obj = getattr(api, f"read_namespaced_{noun}")(
                name, self.settings.namespace, _request_timeout=self.settings.request_timeout_s
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = self.api.sanitize_for_serialization(obj)
        return result

    def watch_pods(
        self, selector: str, on_pod: Callable[[str, dict[str, Any]], None], stop: threading.Event
    ) -> None:
        """Blocking: every pod event (type, pod as JSON) under ``selector`` until ``stop``."""
        from kubernetes import watch

        while not stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_namespaced_pod,
                    self.settings.namespace,
                    label_selector=selector,
                    timeout_seconds=_WATCH_WINDOW_S,
                    _request_timeout=_WATCH_WINDOW_S + 5,
                ):
                    on_pod(event["type"], self.api.sanitize_for_serialization(event["object"]))
                    if stop.is_set():
                        stream.stop()
            except Exception as exc:  # a broken watch is reopened, never fatal
                logger.warning("pod watch broke (%r); reopening", exc)
                stop.wait(_RETRY_S)

    def follow_log(
        self, pod: str, on_bytes: Callable[[bytes], None], stop: threading.Event
    ) -> None:
        """Blocking: the container's log from its start until it ends (or ``stop``).

        A read that waits ``_LOG_IDLE_S`` without a byte ends the request; the follow is
        reopened from that many seconds back, a window in which the program printed nothing,
        so no line is lost or repeated however long a job stays silent."""
        from urllib3.exceptions import ReadTimeoutError

        since: int | None = None
        while not stop.is_set():
            response: Any = self.core.read_namespaced_pod_log(
                pod,
                self.settings.namespace,
                container=CONTAINER_NAME,
                follow=True,
                since_seconds=since,
                _preload_content=False,
                _request_timeout=(self.settings.request_timeout_s, _LOG_IDLE_S),
            )
            try:
                for chunk in response.stream(64 << 10):
                    on_bytes(chunk)
                    if stop.is_set():
                        return
                return
            except ReadTimeoutError:
                since = _LOG_IDLE_S
            finally:
                response.release_conn()
