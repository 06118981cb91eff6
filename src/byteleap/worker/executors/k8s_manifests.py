"""Kubernetes manifests for the Kubernetes executor, rendered as plain dicts. Pure: no I/O.

A job is a ``batch/v1 Job`` (plus a ``ConfigMap`` holding its input files and, when it asks
for isolation, a deny-all ``NetworkPolicy``); a service replica is an ``apps/v1 Deployment``
with a readiness probe and a ``v1 Service`` in front of it.

Every pod gets the same hardening: non-root with a fixed uid, no privilege escalation, every
capability dropped, the runtime's seccomp profile, a read-only root filesystem with ``/work``
(cwd and HOME) and ``/tmp`` as bounded scratch volumes, no service-account token and no
service-link environment. CPU and memory requests equal their limits (the Guaranteed QoS
class: a job is never squeezed by a neighbour). GPUs are ``nvidia.com/gpu`` limits, placed by
the GPU feature discovery label ``nvidia.com/gpu.product`` when a model is asked for, with a
toleration for the ``nvidia.com/gpu`` taint GPU nodes usually carry. ``backoffLimit`` is 0:
retries belong to our scheduler, which moves a failed attempt to another worker.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

from byteleap.protocol.execution import ExecutionSpec
from byteleap.worker.executors.errors import BadSpecError, UnsupportedError
from byteleap.worker.executors.k8s_settings import (
    CONTAINER_NAME,
    FEATURE_CPU_TIME_LIMIT,
    FEATURE_LARGE_INPUTS,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    LABEL_EXECUTION,
    LABEL_JOB,
    LABEL_MANAGED_BY,
    LABEL_SERVICE,
    MAX_CONFIGMAP_BYTES,
    WORK_DIR,
    KubernetesOptions,
    KubernetesSettings,
    Manifest,
    ServiceReplicaSpec,
    checked_env,
    cpu_quantity,
    dns1123_name,
    label_value,
    memory_quantity,
)


def _env_list(env: Mapping[str, str], gpus: int) -> list[dict[str, str]]:
    items = [{"name": "HOME", "value": WORK_DIR}]
    items += [{"name": k, "value": v} for k, v in env.items() if k != "HOME"]
    if gpus == 0:
        # CUDA base images set NVIDIA_VISIBLE_DEVICES=all; on a node whose default runtime is
        # NVIDIA's that would hand a GPU-less pod every GPU.
        items.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    return items


def _resources(cpus: float, memory_mib: int, gpus: int) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": cpu_quantity(cpus), "memory": memory_quantity(memory_mib)}
    if gpus:
        amounts[GPU_RESOURCE] = gpus
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_spec(
    settings: KubernetesSettings,
    container: dict[str, Any],
    *,
    gpus: int,
    gpu_model: str | None,
    restart_policy: str,
    extra_volumes: list[dict[str, Any]] = [],  # noqa: B006 - never mutated
) -> dict[str, Any]:
    uid = settings.run_as_user
    container["volumeMounts"] = [
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
        *container.get("volumeMounts", []),
    ]
    spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.kill_grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "work", "emptyDir": {"sizeLimit": memory_quantity(settings.scratch_mib)}},
            {
                "name": "tmp",
                "emptyDir": {"sizeLimit": memory_quantity(max(1, settings.scratch_mib // 10))},
            },
            *extra_volumes,
        ],
    }
    if gpus:
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    if gpu_model is not None:
        spec["nodeSelector"] = {GPU_PRODUCT_LABEL: gpu_model}
    if settings.runtime_class is not None:
        spec["runtimeClassName"] = settings.runtime_class
    return spec


def _meta(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def job_labels(execution_id: str, job_id: str | None) -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: "byteleap", LABEL_EXECUTION: label_value(execution_id)}
    if job_id is not None:
        labels[LABEL_JOB] = label_value(job_id)
    return labels


def job_image(options: KubernetesOptions, settings: KubernetesSettings) -> str:
    image = options.image or settings.image
    if image is None:
        raise BadSpecError(
            "no image: give KubernetesOptions.image or set BYTELEAP_K8S_IMAGE", field="image"
        )
    return image


def check_job(spec: ExecutionSpec, options: KubernetesOptions) -> None:
    """Refuse what a Kubernetes job cannot honour, before anything is created."""
    if spec.cpu_time_limit_s is not None:
        raise UnsupportedError(
            "the Kubernetes executor cannot limit CPU time (only CPU cores): drop cpu_time_limit_s",
            feature=FEATURE_CPU_TIME_LIMIT,
        )
    try:
        checked_env(spec.env)
    except ValueError as exc:
        raise BadSpecError(str(exc), field="env") from exc
    if (size := sum(len(f.data()) for f in spec.inputs.values())) * 4 // 3 > MAX_CONFIGMAP_BYTES:
        raise UnsupportedError(
            f"inputs of {size} bytes do not fit a ConfigMap (about 760 KiB at most)",
            feature=FEATURE_LARGE_INPUTS,
        )
    if options.gpu_model is not None and not spec.gpus:
        raise BadSpecError("a GPU model is named but no GPU is asked for", field="gpu_model")


def render_inputs(
    spec: ExecutionSpec, name: str, namespace: str, labels: Mapping[str, str]
) -> Manifest | None:
    """The ConfigMap holding the job's input files, keyed ``f0``, ``f1`` … (None: no inputs)."""
    if not spec.inputs:
        return None
    data = {
        f"f{i}": base64.b64encode(file.data()).decode()
        for i, file in enumerate(spec.inputs.values())
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, namespace, labels),
        "immutable": True,
        "binaryData": data,
    }


def _input_mounts(spec: ExecutionSpec, configmap: str) -> tuple[list[Any], list[Any]]:
    """The inputs volume and one read-only file mount per input, at its path under /work."""
    if not spec.inputs:
        return [], []
    items = [
        {"key": f"f{i}", "path": f"f{i}", "mode": 0o555 if file.executable else 0o444}
        for i, file in enumerate(spec.inputs.values())
    ]
    volume = {"name": "inputs", "configMap": {"name": configmap, "items": items}}
    mounts = [
        {"name": "inputs", "mountPath": f"{WORK_DIR}/{path}", "subPath": f"f{i}", "readOnly": True}
        for i, path in enumerate(spec.inputs)
    ]
    return [volume], mounts


def render_job(
    spec: ExecutionSpec,
    options: KubernetesOptions,
    settings: KubernetesSettings,
    *,
    execution_id: str,
) -> list[Manifest]:
    """Every object of one job, in creation order: [ConfigMap], [NetworkPolicy], Job."""
    check_job(spec, options)
    name = dns1123_name(execution_id)
    labels = job_labels(execution_id, options.job_id)
    gpus = len(spec.gpus)
    volumes, mounts = _input_mounts(spec, name)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": job_image(options, settings),
        "command": list(spec.command),  # replaces the entrypoint: argv, no shell
        "workingDir": WORK_DIR,
        "env": _env_list(spec.env, gpus),
        "resources": _resources(
            options.cpus or settings.default_cpus,
            spec.memory_limit_mib or settings.default_memory_mib,
            gpus,
        ),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    pod = _pod_spec(
        settings,
        container,
        gpus=gpus,
        gpu_model=options.gpu_model,
        restart_policy="Never",
        extra_volumes=volumes,
    )
    job: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, settings.namespace, labels),
        "spec": {
            "backoffLimit": 0,
            # Our own timeout counts from the pod's start; the cluster's deadline is the
            # backstop that also covers scheduling and the image pull.
            "activeDeadlineSeconds": math.ceil(spec.timeout_s + settings.start_timeout_s),
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    objects = [render_inputs(spec, name, settings.namespace, labels)]
    if spec.network == "none":
        objects.append(render_deny_all(name, settings.namespace, labels))
    return [o for o in objects if o is not None] + [job]


def render_deny_all(name: str, namespace: str, labels: Mapping[str, str]) -> Manifest:
    """A NetworkPolicy with no rules for both directions: the pods it selects talk to nobody
    (enforced by CNI plugins that implement NetworkPolicy)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "podSelector": {"matchLabels": {LABEL_EXECUTION: labels[LABEL_EXECUTION]}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def service_labels(spec: ServiceReplicaSpec) -> dict[str, str]:
    return {LABEL_MANAGED_BY: "byteleap", LABEL_SERVICE: label_value(spec.service_id)}


def render_service_replicas(
    spec: ServiceReplicaSpec, settings: KubernetesSettings
) -> list[Manifest]:
    """A Deployment of ``spec.replicas`` pods ready when ``health_path`` answers, and a
    ClusterIP Service on ``spec.port`` in front of them."""
    name = dns1123_name(spec.service_id)
    labels = service_labels(spec)
    selector = {LABEL_SERVICE: labels[LABEL_SERVICE]}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "workingDir": WORK_DIR,
        "env": _env_list(spec.env, spec.gpus),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": spec.health_path, "port": "http"},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": spec.health_path, "port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "resources": _resources(
            spec.cpus or settings.default_cpus,
            spec.memory_mib or settings.default_memory_mib,
            spec.gpus,
        ),
        "securityContext": _container_security(),
    }
    if spec.command is not None:
        container["command"] = list(spec.command)
    if spec.args is not None:
        container["args"] = list(spec.args)
    pod = _pod_spec(
        settings, container, gpus=spec.gpus, gpu_model=spec.gpu_model, restart_policy="Always"
    )
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, settings.namespace, labels),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxUnavailable": spec.max_unavailable,
                    "maxSurge": spec.max_surge,
                },
            },
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, settings.namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [deployment, service]
