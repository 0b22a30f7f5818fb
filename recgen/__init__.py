"""recgen: nightly batch recommendations for KuaiRec-style short-video data, in SQLite."""

# Load Python's own SQLite before anything imports TensorFlow: TensorFlow's library carries an SQLite
# without FTS5 whose symbols would otherwise serve the sqlite3 module (the full-text index needs FTS5).
import sqlite3  # noqa: F401

__version__ = "0.1.0"
