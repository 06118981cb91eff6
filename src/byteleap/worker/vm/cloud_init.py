"""The NoCloud data a VM lease boots with: user-data that only installs the customer's SSH key,
meta-data naming the instance, and the checker every user-data passes before it is written.
Pure: no I/O.

The user-data creates one user whose password is locked, with the customer's key and
password-less sudo (there is no password to type: the VM is the customer's, drivers included);
it turns SSH password logins off, root logins off, creates no distro default user, and has
the guest make fresh SSH host keys. It sets no password anywhere and runs no commands.
``check_user_data`` enforces exactly that shape with an allow-list, so a later edit that adds
``chpasswd``, a ``passwd`` or a ``runcmd`` fails here before any guest sees it.
"""

from __future__ import annotations

from typing import Any

import yaml

from byteleap.protocol.ssh import check_ssh_public_key
from byteleap.worker.vm.errors import VmPolicyError
from byteleap.worker.vm.spec import VmSpec

HEADER = "#cloud-config"
_TOP_LEVEL = frozenset({"users", "ssh_pwauth", "disable_root", "ssh_deletekeys"})
_USER_KEYS = frozenset({"name", "lock_passwd", "shell", "sudo", "ssh_authorized_keys"})


def render_user_data(spec: VmSpec) -> str:
    config: dict[str, Any] = {
        "ssh_pwauth": False,
        "disable_root": True,
        "ssh_deletekeys": True,
        "users": [
            {
                "name": spec.username,
                "lock_passwd": True,
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "ssh_authorized_keys": [spec.ssh_public_key],
            }
        ],
    }
    # A wide line keeps the key on one line, as authorized_keys has it.
    text = f"{HEADER}\n{yaml.safe_dump(config, sort_keys=False, width=1 << 16)}"
    check_user_data(text)
    return text


def render_meta_data(spec: VmSpec) -> str:
    text: str = yaml.safe_dump(
        {"instance-id": f"byteleap-{spec.lease_id}", "local-hostname": spec.name},
        sort_keys=False,
    )
    return text


def _password_keys(node: Any, path: str = "") -> list[str]:
    """Every key, at any depth, that names a password."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if "passw" in str(key).lower() and str(key) != "lock_passwd":
                found.append(where)
            found += _password_keys(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += _password_keys(item, f"{path}[{i}]")
    return found


def check_user_data(text: str) -> None:
    """Raise ``VmPolicyError`` unless ``text`` is user-data of the one shape we allow."""
    if text.split("\n", 1)[0].strip() != HEADER:
        raise VmPolicyError(f"user-data must start with {HEADER!r}")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VmPolicyError(f"user-data is not YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise VmPolicyError("user-data must be a mapping")
    problems = [f"it sets a password ({key})" for key in _password_keys(config)]
    if extra := sorted(set(config) - _TOP_LEVEL):
        problems.append(f"it has keys beyond installing an SSH key: {', '.join(extra)}")
    if config.get("ssh_pwauth") is not False:
        problems.append("ssh_pwauth must be false")
    if config.get("disable_root") is not True:
        problems.append("disable_root must be true")
    users = config.get("users")
    if not isinstance(users, list) or not users:
        problems.append("users must list the customer's user")
        users = []
    for user in users:
        problems += _user_problems(user)
    if problems:
        raise VmPolicyError("user-data breaks the VM policy: " + "; ".join(problems))


def _user_problems(user: Any) -> list[str]:
    if not isinstance(user, dict):
        return [f"user {user!r} is not a mapping (no distro default user)"]
    problems = []
    if extra := sorted(set(user) - _USER_KEYS):
        problems.append(f"user {user.get('name')!r} has keys {', '.join(extra)}")
    if user.get("lock_passwd") is not True:
        problems.append(f"user {user.get('name')!r} must have lock_passwd: true")
    keys = user.get("ssh_authorized_keys")
    if not isinstance(keys, list) or not keys:
        problems.append(f"user {user.get('name')!r} has no SSH key")
        keys = []
    for key in keys:
        try:
            check_ssh_public_key(str(key))
        except ValueError as exc:
            problems.append(f"user {user.get('name')!r}: {exc}")
    return problems
