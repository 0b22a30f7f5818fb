"""on PostgreSQL: 64-bit integers, recommendations and user_metrics partitioned by run

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

On PostgreSQL, every INTEGER column becomes BIGINT (SQLite's INTEGER is 64-bit, and KuaiRec's music ids
and daily play-time totals pass 2**31), and `recommendations` and `user_metrics` become `PARTITION BY LIST (run_id)` tables, one
partition per run (`<table>_run_<id>`, created with the run's `runs` row), so that retention drops a run's
partitions instead of deleting its rows. Rows already there are moved into partitions of their runs.
SQLite: nothing changes.
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# table -> primary key columns (run_id first: a partitioned table's keys must hold the partition key)
TABLES = {"recommendations": "run_id, user_id, rank", "user_metrics": "run_id, user_id"}
VIEWS = ("latest_recommendations", "latest_user_metrics", "latest_run_metrics")  # recreated by recgen


def _rebuild(name: str, partitioned: bool) -> None:
    """Recreate `name` (partitioned or not) with the same columns, comments, keys and rows."""
    bind = op.get_bind()
    old = f"{name}_before_0003"
    comment = bind.execute(sa.text("SELECT obj_description(CAST(:t AS regclass), 'pg_class')"), {"t": name}).scalar()
    op.execute(f"ALTER TABLE {name} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{name} TO pk_{old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT fk_{name}_run_id_runs TO fk_{old}_run_id_runs")
    partition_by = " PARTITION BY LIST (run_id)" if partitioned else ""
    op.execute(f"CREATE TABLE {name} (LIKE {old} INCLUDING DEFAULTS INCLUDING COMMENTS){partition_by}")
    op.execute(f"ALTER TABLE {name} ADD CONSTRAINT pk_{name} PRIMARY KEY ({TABLES[name]})")
    op.execute(f"ALTER TABLE {name} ADD CONSTRAINT fk_{name}_run_id_runs FOREIGN KEY (run_id) REFERENCES runs (id)")
    if comment is not None:
        op.create_table_comment(name, comment)
    if partitioned:
        for (run_id,) in bind.execute(sa.text(f"SELECT DISTINCT run_id FROM {old} ORDER BY 1")).all():
            op.execute(f"CREATE TABLE {name}_run_{int(run_id)} PARTITION OF {name} FOR VALUES IN ({int(run_id)})")
    op.execute(f"INSERT INTO {name} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")


def _widen_integers() -> None:
    columns = op.get_bind().execute(
        sa.text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND data_type = 'integer' AND table_name <> 'alembic_version' ORDER BY table_name, ordinal_position"
        )
    ).all()
    for table, column in columns:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    _widen_integers()
    for name in TABLES:
        _rebuild(name, partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for name in TABLES:
        _rebuild(name, partitioned=False)
