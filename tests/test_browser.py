"""The plugin's pages in a real browser: a `datasette` subprocess driven by headless Chromium.

Chromium's own `--dump-dom` and `--screenshot` flags are enough (no Selenium): the pages render charts on
the server and need no JavaScript. Skipped when Chromium is not installed (Debian: `apt-get install
chromium`). The screenshots stay in the test's tmp_path for a human to look at.
"""

import shutil
import sqlite3
import subprocess
import time

import pytest
from conftest import datasette_server

from recgen.store import fts
from recgen.store.engine import get_engine

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


@pytest.fixture(scope="module")
def server(published, tmp_path_factory):
    """A datasette subprocess serving a refreshed copy of the published database."""
    db, _ = published
    work = tmp_path_factory.mktemp("browser")
    path = work / "recs.db"
    src, dst = sqlite3.connect(f"file:{db}?mode=ro", uri=True), sqlite3.connect(path)
    src.backup(dst)
    src.close()
    dst.close()
    engine = get_engine(path)
    fts.refresh(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    user = conn.execute("SELECT min(user_id) FROM latest_user_metrics").fetchone()[0]
    conn.close()
    with datasette_server(path, work / "datasette.log") as base:
        yield base, user


def chromium(tmp_path, *args: str) -> str:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("dashboard", ("recgen dashboard", "Model vs baselines", "Per-user quality", "Coverage and popularity")),
        ("user", ("Current recommendations", "Evaluation", "History by category")),
    ],
)
def test_page_in_a_browser(server, tmp_path, page, expected):
    base, user = server
    url = {
        "dashboard": f"{base}/-/recgen/dashboard",
        "user": f"{base}/-/recgen/user/{user}",
    }[page]
    dom = chromium(tmp_path, "--dump-dom", url)
    for text in expected:
        assert text in dom, text
    assert dom.count("data:image/png;base64,") >= (4 if page == "dashboard" else 1)
    assert "Traceback" not in dom and "Error 500" not in dom
    screenshot = tmp_path / f"{page}.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2400", url)
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 20_000
    print(f"screenshot: {screenshot}")
