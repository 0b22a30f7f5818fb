import subprocess
import sys


def test_recgen_keeps_the_full_sqlite_even_after_tensorflow_is_loaded():
    """TensorFlow embeds an SQLite without FTS5; importing recgen first must keep Python's own."""
    code = (
        "import recgen, recgen.models.keras_base, sqlite3\n"
        "sqlite3.connect(':memory:').execute('CREATE VIRTUAL TABLE t USING fts5(a)')\n"
        "print(sqlite3.sqlite_version)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
