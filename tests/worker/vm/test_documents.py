"""The domain XML and the cloud-init data of a VM lease, checked by libvirt's own schema
validator (``virt-xml-validate``, Debian's libvirt-clients) and cloud-init's own schema
(``cloud-init schema``, Debian's cloud-init), and by our policy checkers; each validator is
shown to reject a broken document, so its pass means something. Golden files pin the full
documents; refresh them with ``UPDATE_SNAPSHOT=1``."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from byteleap.worker.vm import (
    VmPolicyError,
    VmSpec,
    check_domain,
    check_user_data,
    render_domain,
    render_meta_data,
    render_user_data,
)
from worker.vm.vm_fixtures import need_tools, vm_spec

GOLDEN = Path(__file__).parent / "golden"
FIXED_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+ehR6JoA5TrjtgGh9WeMJWy2mymSuHtyzK8d8GLRlG alice@laptop"
)


def fixed_spec(**overrides: object) -> VmSpec:
    return vm_spec(Path("/var/lib/byteleap/vm"), ssh_public_key=FIXED_KEY, **overrides)


def validate_domain(path: Path) -> subprocess.CompletedProcess[str]:
    need_tools("virt-xml-validate", "xmllint")
    return subprocess.run(
        ["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, check=False
    )


def validate_cloud_config(path: Path) -> subprocess.CompletedProcess[str]:
    need_tools("cloud-init")
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("gpus", [[], ["0000:41:00.0"], ["0000:41:00.0", "0000:c1:00.0"]])
def test_the_domain_passes_libvirts_schema_and_our_policy(tmp_path: Path, gpus: list[str]) -> None:
    xml = render_domain(fixed_spec(gpus=gpus))
    check_domain(xml)
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    checked = validate_domain(path)
    assert checked.returncode == 0, checked.stderr
    domain = ET.fromstring(xml)
    assert len(domain.findall("./devices/hostdev")) == len(gpus)
    assert domain.find(".//graphics") is None
    assert domain.find("./cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]


def test_libvirts_validator_rejects_a_broken_domain(tmp_path: Path) -> None:
    domain = ET.fromstring(render_domain(fixed_spec()))
    ET.SubElement(domain.find("./devices"), "hostdev", {"mode": "sideways"})  # type: ignore[arg-type]
    path = tmp_path / "broken.xml"
    path.write_text(ET.tostring(domain, encoding="unicode"))
    checked = validate_domain(path)
    assert checked.returncode != 0
    assert "fails to validate" in checked.stderr + checked.stdout


def test_the_domain_matches_its_golden_file() -> None:
    _golden("domain.xml", render_domain(fixed_spec()))


def test_the_cloud_init_data_matches_its_golden_files() -> None:
    spec = fixed_spec()
    _golden("user-data.yaml", render_user_data(spec))
    _golden("meta-data.yaml", render_meta_data(spec))


def _golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def _with_device(xml: str, device: str) -> str:
    return xml.replace("</devices>", f"{device}</devices>")


_XML = render_domain(fixed_spec())


@pytest.mark.parametrize(
    ("xml", "why"),
    [
        (_with_device(_XML, "<graphics type='vnc' port='-1' autoport='yes'/>"), "graphics"),
        (_with_device(_XML, "<graphics type='spice' autoport='yes'/>"), "graphics"),
        (_XML.replace('<model type="none" />', '<model type="qxl" />'), "video"),
        (_with_device(_XML, "<channel type='spicevmc'><target type='virtio'/></channel>"), "SPICE"),
        (_XML.replace('managed="yes"', 'managed="no"', 1), "managed PCI"),
        (
            _with_device(_XML, "<hostdev mode='subsystem' type='usb' managed='yes'/>"),
            "managed PCI",
        ),
        (re.sub(r"<serial .*?</serial>", "", _XML, flags=re.S), "serial console"),
        (_XML.replace("host-passthrough", "host-model"), "host-passthrough"),
        (
            _XML.replace(
                "</domain>",
                "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
                "<qemu:arg value='-vnc'/></qemu:commandline></domain>",
            ),
            "QEMU",
        ),
        ("<domain", "well-formed"),
    ],
)
def test_the_policy_rejects_a_domain_that_breaks_it(xml: str, why: str) -> None:
    with pytest.raises(VmPolicyError, match=why):
        check_domain(xml)


def test_the_user_data_passes_cloud_inits_schema(tmp_path: Path) -> None:
    spec = fixed_spec()
    text = render_user_data(spec)
    path = tmp_path / "user-data"
    path.write_text(text)
    checked = validate_cloud_config(path)
    assert checked.returncode == 0, checked.stderr
    assert "Valid cloud-config" in checked.stdout
    config = yaml.safe_load(text)
    (user,) = config["users"]
    assert user["ssh_authorized_keys"] == [FIXED_KEY]
    assert user["lock_passwd"] is True
    assert config["ssh_pwauth"] is False and config["disable_root"] is True
    assert "chpasswd" not in config and "password" not in text


def test_cloud_inits_schema_rejects_a_broken_user_data(tmp_path: Path) -> None:
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\nusers: 5\nssh_authorized_keys: {a: 1}\n")
    checked = validate_cloud_config(path)
    assert checked.returncode != 0
    assert "users" in checked.stdout + checked.stderr


def test_meta_data_names_the_instance() -> None:
    meta = yaml.safe_load(render_meta_data(fixed_spec()))
    assert meta == {"instance-id": "byteleap-lease_7", "local-hostname": "lease-7"}


_USER_DATA = render_user_data(fixed_spec())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (_USER_DATA.replace("lock_passwd: true", "lock_passwd: true\n  passwd: $6$x$y"), "passwd"),
        (
            _USER_DATA.replace("lock_passwd: true", "lock_passwd: true\n  plain_text_passwd: pw"),
            "password",
        ),
        (_USER_DATA + "chpasswd:\n  list: |\n    root:hunter2\n  expire: false\n", "chpasswd"),
        (_USER_DATA + "password: hunter2\n", "password"),
        (_USER_DATA.replace("ssh_pwauth: false", "ssh_pwauth: true"), "ssh_pwauth"),
        (_USER_DATA.replace("disable_root: true", "disable_root: false"), "disable_root"),
        (_USER_DATA.replace("lock_passwd: true", "lock_passwd: false"), "lock_passwd"),
        (_USER_DATA + "runcmd:\n- curl x | sh\n", "runcmd"),
        (_USER_DATA.replace("users:\n", "users:\n- default\n"), "default user"),
        (_USER_DATA.replace("ssh-ed25519 ", "ssh-dss "), "not one of"),
        (_USER_DATA.replace("#cloud-config\n", ""), "start with"),
        ("#cloud-config\n[1, 2]\n", "mapping"),
        ("#cloud-config\nusers: [\n", "not YAML"),
    ],
)
def test_our_checker_rejects_user_data_beyond_an_ssh_key(text: str, why: str) -> None:
    with pytest.raises(VmPolicyError, match=why):
        check_user_data(text)
