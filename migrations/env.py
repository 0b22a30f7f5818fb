"""Alembic environment: recgen passes its engine in `config.attributes`; the CLI fallback reads a URL."""

from alembic import context
from sqlalchemy import create_engine

from recgen.store.schema import metadata

config = context.config


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table.
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("recgen migrations run online only (recgen migrates the database itself)")
run_migrations()
