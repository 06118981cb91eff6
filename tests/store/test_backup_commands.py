"""The pure part of backups: store URL → pg_dump/pg_restore argv and environment, file kinds,
and reading a dump's listing and revision."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from byteleap.store.backup import (
    backup_kind,
    copied_revision,
    dump_tables,
    libpq_connection,
    pg_dump_command,
    pg_restore_command,
)


def test_every_part_of_the_url_reaches_libpq_and_the_password_only_the_env() -> None:
    url = make_url("postgresql+asyncpg://val:s3cr%3Ft@db.example:6543/byteleap?ssl=require")
    cmd = pg_dump_command(url, "/b/x.dump", pg_dump="/usr/bin/pg_dump")
    assert cmd.argv == [
        "/usr/bin/pg_dump",
        "--format=custom",
        "--no-password",
        "--file=/b/x.dump",
        "--dbname=host='db.example' port='6543' user='val' dbname='byteleap' sslmode='require'",
    ]
    assert cmd.env == {"PGPASSWORD": "s3cr?t"}
    assert not any("s3cr" in a for a in cmd.argv)


def test_restore_is_clean_ownerless_and_one_transaction() -> None:
    cmd = pg_restore_command(make_url("postgresql+asyncpg://postgres@127.0.0.1/db"), "f.dump")
    assert cmd.argv[0] == "pg_restore"
    assert {
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
    } <= set(cmd.argv)
    assert cmd.argv[-2:] == ["--dbname=host='127.0.0.1' user='postgres' dbname='db'", "f.dump"]
    assert cmd.env == {}


def test_a_database_name_is_never_read_as_more_conninfo() -> None:
    url = make_url("postgresql+asyncpg://u@h/odd name' host=evil \\x")
    (conninfo,) = libpq_connection(url).argv
    assert conninfo == "host='h' user='u' dbname='odd name\\' host=evil \\\\x'"


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("?ssl=true", "require"),
        ("?sslmode=verify-full", "verify-full"),
        ("?ssl=disable", "disable"),
    ],
)
def test_ssl_options_become_sslmode(query: str, mode: str) -> None:
    (conninfo,) = libpq_connection(make_url(f"postgresql+asyncpg://u@h/d{query}")).argv
    assert conninfo.endswith(f"sslmode='{mode}'")


def test_unix_socket_host_and_driver_options() -> None:
    url = make_url(
        "postgresql+asyncpg://u@/d?host=/var/run/postgresql&prepared_statement_cache_size=0"
    )
    assert libpq_connection(url).argv == ["host='/var/run/postgresql' user='u' dbname='d'"]


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="ssl mode"):
        libpq_connection(make_url("postgresql+asyncpg://u@h/d?ssl=maybe"))
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        libpq_connection(make_url("sqlite+aiosqlite:///x.db"))


def test_backup_kind_by_magic() -> None:
    assert backup_kind(b"SQLite format 3\x00rest") == "sqlite"
    assert backup_kind(b"PGDMP\x01\x0e\x00") == "postgresql"
    assert backup_kind(b"PK\x03\x04") is None
    assert backup_kind(b"") is None


LISTING = """;
; Archive created at 2025-01-01 00:00:00 UTC
;     dbname: byteleap
;
214; 1259 16388 TABLE public alembic_version postgres
235; 1259 16538 TABLE public api_keys postgres
234; 1259 16537 SEQUENCE public api_keys_id_seq postgres
3620; 0 16388 TABLE DATA public alembic_version postgres
3641; 0 16538 TABLE DATA public api_keys postgres
3400; 2606 16392 CONSTRAINT public alembic_version alembic_version_pkc postgres
"""


def test_dump_tables_reads_tables_not_their_data_or_sequences() -> None:
    assert dump_tables(LISTING) == {"alembic_version", "api_keys"}


def test_copied_revision() -> None:
    text = (
        "--\n-- Data for Name: alembic_version\n--\n\n"
        "COPY public.alembic_version (version_num) FROM stdin;\n0014\n\\.\n\n"
    )
    assert copied_revision(text) == "0014"
    assert copied_revision("COPY public.alembic_version (version_num) FROM stdin;\n\\.\n") is None
    assert copied_revision("") is None
