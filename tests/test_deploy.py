"""The deployment files in deploy/, validated offline (no registry is reachable here, so the
image is never built): the compose file against the Compose Specification's JSON schema
(tests/data/compose-spec.json, compose-spec/compose-spec@170098b, Apache-2.0), the Kubernetes
manifests against the API's OpenAPI schema (strict), the role configs through the role
settings, and the Containerfile's sources and entry point against this tree and the CLI. Each
validator is shown to reject a broken file, so a pass means something.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from byteleap.cli import app
from byteleap.config import GatewaySettings, ValidatorSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# The schema names draft-07 by an https URL jsonschema does not know: say the draft here.
COMPOSE = jsonschema.Draft7Validator(
    json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())
)
K8S_VERSION = "1.31.0"
ROLE_SETTINGS = {"validator": ValidatorSettings, "gateway": GatewaySettings}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _manifests() -> list[dict[str, Any]]:
    docs = yaml.safe_load_all((DEPLOY / "k8s" / "byteleap.yaml").read_text())
    return [doc for doc in docs if doc]


def _commands(args: list[str]) -> list[str]:
    """The CLI words of a role invocation, up to its first option."""
    return list(args[: next((i for i, a in enumerate(args) if a.startswith("-")), len(args))])


def _assert_cli_accepts(words: list[str]) -> None:
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, (words, result.output)


def test_the_compose_file_is_valid_compose() -> None:
    COMPOSE.validate(_compose())


def test_the_compose_schema_rejects_a_broken_file() -> None:
    broken = copy.deepcopy(_compose())
    broken["services"]["gateway"]["portz"] = ["8080:8080"]  # a typo compose would ignore
    with pytest.raises(jsonschema.ValidationError):
        COMPOSE.validate(broken)


def test_compose_runs_real_commands_with_configs_that_load(tmp_path: Path) -> None:
    services = _compose()["services"]
    for name in ("migrate", "validator", "gateway"):
        command = services[name]["command"]
        _assert_cli_accepts(_commands(command))
        config = command[command.index("--config") + 1]
        assert config.startswith("/etc/byteleap/"), config
        assert (DEPLOY / "config" / Path(config).name).is_file(), config
    # The store's password comes from the environment, never from a file in the tree.
    url = services["validator"]["environment"]["BYTELEAP_STORE__URL"]
    assert "${BYTELEAP_DB_PASSWORD" in url


@pytest.mark.parametrize("role", sorted(ROLE_SETTINGS))
def test_the_shipped_configs_load_as_production_configs(role: str) -> None:
    settings = load_settings(ROLE_SETTINGS[role], DEPLOY / "config" / f"{role}.toml")
    assert settings.chain.adapter == "bittensor"
    assert settings.store.url.startswith("postgresql+asyncpg://")
    assert str(settings.home) == "/var/lib/byteleap"
    if isinstance(settings, GatewaySettings):  # public, so TLS
        assert settings.host == "0.0.0.0" and settings.tls_cert and settings.tls_key
        assert not settings.insecure_public


@pytest.mark.k8s
def test_the_kubernetes_manifests_are_valid() -> None:
    manifests = _manifests()
    assert {m["kind"] for m in manifests} >= {
        "ConfigMap", "Service", "StatefulSet", "Deployment", "PersistentVolumeClaim"
    }  # fmt: skip
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


@pytest.mark.k8s
def test_the_kubernetes_validator_rejects_a_broken_manifest() -> None:
    deployment = next(m for m in _manifests() if m["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["argz"] = ["oops"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.k8s
def test_the_kubernetes_configs_are_the_shipped_ones_and_commands_are_real() -> None:
    (config_map,) = [m for m in _manifests() if m["kind"] == "ConfigMap"]
    for name, text in config_map["data"].items():
        assert text == (DEPLOY / "config" / name).read_text(), name
    for manifest in _manifests():
        if manifest["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = manifest["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            if "byteleap" in container["image"]:
                _assert_cli_accepts(_commands(container["args"]))
        containers = [*pod.get("initContainers", []), *pod["containers"]]
        mounted = {v["name"] for c in containers for v in c.get("volumeMounts", [])}
        claims = manifest["spec"].get("volumeClaimTemplates", [])
        declared = {v["name"] for v in [*pod.get("volumes", []), *(c["metadata"] for c in claims)]}
        assert mounted <= declared, manifest["metadata"]["name"]


def test_the_containerfile_copies_what_exists_and_runs_the_cli() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M)
    assert copies
    for sources in copies:
        for source in sources.split():
            assert (ROOT / source).exists(), source
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert entry is not None
    assert json.loads(entry.group(1))[-1] == "byteleap"
    # the console script it runs is the one pyproject declares
    assert 'byteleap = "byteleap.cli:main"' in (ROOT / "pyproject.toml").read_text()
