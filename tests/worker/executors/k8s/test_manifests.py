"""Kubernetes manifests rendered for jobs and service replicas (marker ``k8s``, no cluster).

Every rendered object is checked against the Kubernetes OpenAPI schema bundled by
``kubernetes-validate`` (strict: unknown fields are errors), and the validator itself is shown
to reject broken objects, so a pass means something. Golden files pin the full shape; refresh
them with ``UPDATE_SNAPSHOT=1`` after an intended change.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.worker.executors import (
    BadSpecError,
    ExecutionSpec,
    ExecutorError,
    InputFile,
    KubernetesExecutor,
    KubernetesOptions,
    KubernetesSettings,
    ServiceReplicaSpec,
    UnsupportedError,
    executor_for,
)
from byteleap.worker.executors.k8s_manifests import render_job, render_service_replicas
from byteleap.worker.executors.k8s_settings import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    LABEL_EXECUTION,
    LABEL_JOB,
    dns1123_name,
    label_value,
)

pytestmark = pytest.mark.k8s

K8S_VERSION = "1.31.0"
GOLDEN = Path(__file__).parent / "golden"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
SETTINGS = KubernetesSettings(namespace="tenant-jobs", image="registry.local/busybox:1.36")


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def job_spec(**overrides: Any) -> ExecutionSpec:
    fields: dict[str, Any] = {"command": ["python", "train.py", "--epochs", "3"], "timeout_s": 90}
    return ExecutionSpec(**(fields | overrides))


def gpu_job() -> list[dict[str, Any]]:
    spec = job_spec(
        gpus=[0, 1],
        memory_limit_mib=4096,
        env={"MODEL": "llama", "QUOTE": 'it\'s "fine"'},
        inputs={
            "train.py": "print('hi')",
            "bin/run.sh": InputFile(content="#!/bin/sh\n", executable=True),
        },
        network="none",
    )
    options = KubernetesOptions(cpus=2.5, gpu_model="NVIDIA-H100-80GB-HBM3", job_id="job_7F3a")
    return render_job(spec, options, SETTINGS, execution_id="0123456789abcdef")


def plain_job() -> list[dict[str, Any]]:
    return render_job(job_spec(), KubernetesOptions(), SETTINGS, execution_id="fedcba9876543210")


def service() -> list[dict[str, Any]]:
    spec = ServiceReplicaSpec(
        service_id="svc_Chat-01",
        image="registry.local/vllm:0.6",
        args=["--port", "8000"],
        port=8000,
        health_path="/v1/models",
        replicas=3,
        gpus=1,
        gpu_model="NVIDIA-A100-SXM4-80GB",
        memory_mib=16384,
    )
    return render_service_replicas(spec, SETTINGS)


RENDERERS = {"gpu_job": gpu_job, "plain_job": plain_job, "service": service}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


@pytest.mark.parametrize("case", sorted(RENDERERS))
def test_every_rendered_object_passes_the_kubernetes_schema(case: str) -> None:
    objects = RENDERERS[case]()
    for manifest in objects:
        validate(manifest)
        name = manifest["metadata"]["name"]
        assert len(name) <= 63 and DNS_LABEL.fullmatch(name) and name[0].isalpha()
        assert manifest["metadata"]["namespace"] == "tenant-jobs"
        for value in manifest["metadata"]["labels"].values():
            assert len(value) <= 63 and LABEL_VALUE.fullmatch(value)


@pytest.mark.parametrize("case", sorted(RENDERERS))
def test_rendered_objects_match_their_golden_file(case: str) -> None:
    rendered = json.dumps(RENDERERS[case](), indent=2, sort_keys=True) + "\n"
    golden = GOLDEN / f"{case}.json"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def _break_type(job: dict[str, Any]) -> None:
    job["spec"]["backoffLimit"] = "zero"


def _unknown_field(job: dict[str, Any]) -> None:
    job["spec"]["template"]["spec"]["containers"][0]["privilegedMode"] = True


def _no_container_name(job: dict[str, Any]) -> None:
    del job["spec"]["template"]["spec"]["containers"][0]["name"]


def _no_template(job: dict[str, Any]) -> None:
    del job["spec"]["template"]


def _capabilities_not_a_list(job: dict[str, Any]) -> None:
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] = "ALL"


@pytest.mark.parametrize(
    "breakage",
    [_break_type, _unknown_field, _no_container_name, _no_template, _capabilities_not_a_list],
)
def test_the_schema_rejects_a_broken_job(breakage: Any) -> None:
    job = copy.deepcopy(by_kind(gpu_job())["Job"])
    validate(job)
    breakage(job)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


def test_job_is_hardened_and_gives_retries_to_our_scheduler() -> None:
    objects = by_kind(gpu_job())
    job = objects["Job"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] >= 90
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["command"] == ["python", "train.py", "--epochs", "3"]
    assert "args" not in container
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"] == {"cpu": "2500m", "memory": "4096Mi", GPU_RESOURCE: 2}
    assert pod["nodeSelector"] == {GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[LABEL_JOB] == "job_7F3a" and labels[LABEL_EXECUTION] == "0123456789abcdef"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODEL"] == "llama" and "NVIDIA_VISIBLE_DEVICES" not in env
    policy = objects["NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"] and "egress" not in policy["spec"]


def test_inputs_are_mounted_file_by_file_with_their_mode() -> None:
    objects = by_kind(gpu_job())
    data = objects["ConfigMap"]["binaryData"]
    assert len(data) == 2 and objects["ConfigMap"]["immutable"] is True
    pod = objects["Job"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/work/train.py"]["readOnly"] is True
    items = next(v for v in pod["volumes"] if v["name"] == "inputs")["configMap"]["items"]
    modes = {mounts[f"/work/{p}"]["subPath"]: p for p in ("train.py", "bin/run.sh")}
    by_key = {i["key"]: i["mode"] for i in items}
    assert by_key[next(k for k, p in modes.items() if p == "bin/run.sh")] == 0o555
    assert by_key[next(k for k, p in modes.items() if p == "train.py")] == 0o444


def test_a_cpu_job_gets_no_gpu_and_cannot_see_one() -> None:
    (job,) = plain_job()
    pod = job["spec"]["template"]["spec"]
    assert GPU_RESOURCE not in pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_service_replicas_have_a_probe_a_port_and_a_rolling_update() -> None:
    objects = by_kind(service())
    deployment, svc = objects["Deployment"], objects["Service"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": "http"}
    assert container["ports"][0]["containerPort"] == 8000
    assert container["args"] == ["--port", "8000"] and "command" not in container
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["selector"] == selector
    assert svc["spec"]["ports"][0]["port"] == 8000
    assert deployment["spec"]["template"]["spec"]["restartPolicy"] == "Always"


@pytest.mark.parametrize(
    ("spec", "options", "error", "word"),
    [
        (job_spec(cpu_time_limit_s=10), KubernetesOptions(), UnsupportedError, "CPU time"),
        (
            job_spec(env={"NVIDIA_VISIBLE_DEVICES": "all"}),
            KubernetesOptions(),
            BadSpecError,
            "device plugin",
        ),
        (job_spec(env={"1BAD": "x"}), KubernetesOptions(), BadSpecError, "not valid"),
        (job_spec(), KubernetesOptions(gpu_model="NVIDIA-A10"), BadSpecError, "no GPU"),
        (
            job_spec(inputs={"big.bin": InputFile.from_bytes(b"\0" * (800 << 10))}),
            KubernetesOptions(),
            UnsupportedError,
            "ConfigMap",
        ),
    ],
)
def test_what_a_job_cannot_have_is_refused_before_any_call(
    spec: ExecutionSpec, options: KubernetesOptions, error: type[Exception], word: str
) -> None:
    with pytest.raises(error, match=word):
        render_job(spec, options, SETTINGS, execution_id="x")


def test_no_image_anywhere_is_a_bad_spec() -> None:
    with pytest.raises(BadSpecError, match="no image"):
        render_job(job_spec(), KubernetesOptions(), KubernetesSettings(), execution_id="x")


@pytest.mark.parametrize(
    "fields",
    [
        {"image": "-v"},
        {"image": "a b"},
        {"gpu_model": "A100\nx"},
        {"gpu_model": ""},
        {"cpus": 0},
    ],
)
def test_bad_options_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(BadSpecError):
        KubernetesOptions.parse(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_unavailable": 0, "max_surge": 0},
        {"gpu_model": "NVIDIA-A10"},
        {"health_path": "no-slash"},
        {"port": 0},
        {"env": {"NVIDIA_VISIBLE_DEVICES": "all"}},
    ],
)
def test_bad_service_specs_are_refused(fields: dict[str, Any]) -> None:
    base = {"service_id": "s", "image": "img", "port": 80}
    with pytest.raises(BadSpecError):
        ServiceReplicaSpec.parse(base | fields)


def test_settings_come_from_the_environment_and_are_checked() -> None:
    settings = KubernetesSettings.from_env(
        {"BYTELEAP_K8S_NAMESPACE": "gpu-jobs", "BYTELEAP_K8S_RUN_AS_USER": "1000"}
    )
    assert settings.namespace == "gpu-jobs" and settings.run_as_user == 1000
    with pytest.raises(ExecutorError, match="BYTELEAP_K8S"):
        KubernetesSettings.from_env({"BYTELEAP_K8S_NAMESPACE": "Not_A_Label"})
    with pytest.raises(ExecutorError):
        KubernetesSettings.from_env({"BYTELEAP_K8S_RUN_AS_USER": "0"})


@given(st.text(max_size=120))
def test_any_id_becomes_a_dns_label(raw: str) -> None:
    name = dns1123_name(raw)
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name) and name[0].isalpha()
    assert name == dns1123_name(raw)
    value = label_value(raw)
    assert len(value) <= 63 and LABEL_VALUE.fullmatch(value)


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_distinct_ids_never_share_a_name(a: str, b: str) -> None:
    if a != b:
        assert dns1123_name(a) != dns1123_name(b)
        assert label_value(a) != label_value(b)


def test_the_executor_is_registered_by_name() -> None:
    chosen = executor_for("kubernetes")
    assert isinstance(chosen, KubernetesExecutor) and chosen.name == "kubernetes"
