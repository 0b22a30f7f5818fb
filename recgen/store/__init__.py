"""The store: the schema, the engine and its migrations, bulk writes, the run record and retention, the job
lock, the interaction cache, and SQLite's publishing extras (full-text search)."""
