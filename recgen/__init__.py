"""recgen: nightly batch recommendations for KuaiRec-style short-video data, in SQLite."""

# Load Python's own SQLite before anything imports TensorFlow: TensorFlow's library carries an SQLite
# without FTS5 whose symbols would otherwise serve the sqlite3 module (the full-text index needs FTS5).
import sqlite3  # noqa: F401

from recgen.runtime import size_thread_pools

size_thread_pools()  # before numpy or TensorFlow start their pools: sized to the cores this process may use

__version__ = "0.1.0"
