"""The store of a validator or gateway: reachable, and its schema at the code's head."""

from __future__ import annotations

from byteleap.commands.doctor_checks.model import Finding, fail, ok


def upgrade_fix(url: str) -> str:
    return f"byteleap db upgrade --url '{url}'"


def schema_verdict(target: str, have: str | None, head: str, url: str) -> Finding:
    """Pure: the database's revision against the code's head."""
    if have == head:
        return ok("store schema", f"{target} at head {head}")
    return fail(
        "store schema",
        f"{target} is at schema revision {have or 'none (not migrated)'}, this code needs {head}",
        upgrade_fix(url),
    )


async def check_store(url: str, role: str) -> list[Finding]:
    from byteleap.store.engine import open_store, parse_url, sqlite_path
    from byteleap.store.errors import StoreError
    from byteleap.store.migrate import current_revision
    from byteleap.store.revisions import head_revision

    path = sqlite_path(parse_url(url))
    if path is not None and not path.exists():
        # The role creates and migrates it at its first start: nothing is wrong yet.
        return [ok("store", f"no sqlite file at {path} yet: `{role} run` creates it")]
    try:
        store = await open_store(url, require_head=False)
    except StoreError as exc:
        fix = (
            f"fix store.url in [{role}]"
            if path is not None
            else f"start the database server it names, or fix store.url in [{role}]"
        )
        return [fail("store", f"unreachable: {exc}", fix)]
    try:
        have = await current_revision(store)
        return [
            ok("store", f"{store.target} answers"),
            schema_verdict(store.target, have, head_revision(), url),
        ]
    finally:
        await store.close()
