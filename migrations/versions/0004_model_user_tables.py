"""per-user tables kept beside a model's .keras file (--engine ray)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 02:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

INTEGER = sa.Integer().with_variant(sa.BigInteger(), "postgresql")  # as every integer after 0003


def upgrade() -> None:
    op.create_table('model_user_tables',
    sa.Column('model_id', INTEGER, nullable=False, comment='Model the tables belong to'),
    sa.Column('first_user', INTEGER, nullable=False, comment='First user of the file (catalogue index: users sorted by id, from 0)'),
    sa.Column('stop_user', INTEGER, nullable=False, comment='One past the last user of the file (catalogue index)'),
    sa.Column('path', sa.Text(), nullable=False, comment='Parquet file: each user\'s refit correction and residual factors'),
    sa.Column('sha256', sa.String(length=64), nullable=False, comment='SHA-256 of the file, checked before a worker reads it'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_model_user_tables_model_id_models')),
    sa.PrimaryKeyConstraint('model_id', 'first_user', name=op.f('pk_model_user_tables')),
    comment='Per-user tables of a model trained with --engine ray, kept beside its .keras file instead of inside it: one file per range of users, each read only by the workers that score those users.'
    )


def downgrade() -> None:
    op.drop_table('model_user_tables')
