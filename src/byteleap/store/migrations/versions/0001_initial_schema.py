"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 12:57:16.028042
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("hotkey", sa.String(length=64), nullable=True),
        sa.Column("uid", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_events")),
    )
    op.create_index(op.f("ix_chain_events_block"), "chain_events", ["block"], unique=False)
    op.create_index("ix_chain_events_kind_at", "chain_events", ["kind", "at"], unique=False)
    op.create_table(
        "miners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hotkey", sa.String(length=64), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=True),
        sa.Column("axon", sa.String(length=255), nullable=True),
        sa.Column("first_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_miners")),
        sa.UniqueConstraint("hotkey", name=op.f("uq_miners_hotkey")),
    )
    op.create_index(op.f("ix_miners_uid"), "miners", ["uid"], unique=False)
    op.create_table(
        "weight_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("netuid", sa.Integer(), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=True),
        sa.Column("version_key", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weight_sets")),
    )
    op.create_index(op.f("ix_weight_sets_block"), "weight_sets", ["block"], unique=False)
    op.create_index(
        op.f("ix_weight_sets_computed_at"), "weight_sets", ["computed_at"], unique=False
    )
    op.create_table(
        "weight_entries",
        sa.Column("weight_set_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["weight_set_id"],
            ["weight_sets.id"],
            name=op.f("fk_weight_entries_weight_set_id_weight_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("weight_set_id", "uid", name=op.f("pk_weight_entries")),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("worker_key", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cpu_model", sa.String(length=128), nullable=True),
        sa.Column("cpu_cores", sa.Integer(), nullable=True),
        sa.Column("ram_mb", sa.BigInteger(), nullable=True),
        sa.Column("disk_mb", sa.BigInteger(), nullable=True),
        sa.Column("first_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["miner_id"], ["miners.id"], name=op.f("fk_workers_miner_id_miners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.UniqueConstraint("miner_id", "worker_key", name=op.f("uq_workers_miner_id_worker_key")),
    )
    op.create_table(
        "availability_spans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("start_bucket", sa.BigInteger(), nullable=False),
        sa.Column("end_bucket", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "end_bucket > start_bucket", name=op.f("ck_availability_spans_nonempty")
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_availability_spans_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_spans")),
    )
    op.create_index(
        op.f("ix_availability_spans_end_bucket"), "availability_spans", ["end_bucket"], unique=False
    )
    op.create_index(
        "ix_availability_spans_worker_end",
        "availability_spans",
        ["worker_id", "end_bucket"],
        unique=False,
    )
    op.create_table(
        "challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.String(length=255), nullable=True),
        sa.Column("claimed_gpu", sa.String(length=128), nullable=True),
        sa.Column("root", sa.String(length=128), nullable=True),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("deadline_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("rtt_s", sa.Float(), nullable=True),
        sa.Column("commit_s", sa.Float(), nullable=True),
        sa.Column("compute_s", sa.Float(), nullable=True),
        sa.Column("throughput", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["miner_id"],
            ["miners.id"],
            name=op.f("fk_challenges_miner_id_miners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_challenges_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_challenges")),
    )
    op.create_index(op.f("ix_challenges_issued_at"), "challenges", ["issued_at"], unique=False)
    op.create_index(op.f("ix_challenges_miner_id"), "challenges", ["miner_id"], unique=False)
    op.create_index(op.f("ix_challenges_status"), "challenges", ["status"], unique=False)
    op.create_index(
        "ix_challenges_worker_issued", "challenges", ["worker_id", "issued_at"], unique=False
    )
    op.create_table(
        "gpus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("vram_mb", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_gpus_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpus")),
        sa.UniqueConstraint("worker_id", "slot", name=op.f("uq_gpus_worker_id_slot")),
    )
    op.create_table(
        "worker_ips",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("first_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_worker_ips_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_ips")),
    )
    op.create_index(
        op.f("ix_worker_ips_last_seen_at"), "worker_ips", ["last_seen_at"], unique=False
    )
    op.create_index(
        "ix_worker_ips_worker_last", "worker_ips", ["worker_id", "last_seen_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_worker_ips_worker_last", table_name="worker_ips")
    op.drop_index(op.f("ix_worker_ips_last_seen_at"), table_name="worker_ips")
    op.drop_table("worker_ips")
    op.drop_table("gpus")
    op.drop_index("ix_challenges_worker_issued", table_name="challenges")
    op.drop_index(op.f("ix_challenges_status"), table_name="challenges")
    op.drop_index(op.f("ix_challenges_miner_id"), table_name="challenges")
    op.drop_index(op.f("ix_challenges_issued_at"), table_name="challenges")
    op.drop_table("challenges")
    op.drop_index("ix_availability_spans_worker_end", table_name="availability_spans")
    op.drop_index(op.f("ix_availability_spans_end_bucket"), table_name="availability_spans")
    op.drop_table("availability_spans")
    op.drop_table("workers")
    op.drop_table("weight_entries")
    op.drop_index(op.f("ix_weight_sets_computed_at"), table_name="weight_sets")
    op.drop_index(op.f("ix_weight_sets_block"), table_name="weight_sets")
    op.drop_table("weight_sets")
    op.drop_index(op.f("ix_miners_uid"), table_name="miners")
    op.drop_table("miners")
    op.drop_index("ix_chain_events_kind_at", table_name="chain_events")
    op.drop_index(op.f("ix_chain_events_block"), table_name="chain_events")
    op.drop_table("chain_events")
