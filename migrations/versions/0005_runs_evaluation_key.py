"""runs.evaluation_key: a run whose evaluation inputs are unchanged copies the metrics of the run before

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 16:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evaluation_key', sa.String(length=64), nullable=True, comment='Hash of everything the metrics depend on (data, models, k, seed, scorer, recgen version): a run with the key of a kept run copies its metrics'))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('evaluation_key')
