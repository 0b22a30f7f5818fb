"""The docs stay true and the README stays a front door: links resolve, references are generated."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_and_image_of_the_docs_exists():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.name} links to a missing {target}"


def test_the_readme_is_a_front_door():
    assert (ROOT / "README.md").stat().st_size < 12_800


def test_the_generated_references_are_current():
    references = [str(ROOT / "docs" / name) for name in ("cli.md", "schema.md")]
    result = subprocess.run([sys.executable, "-m", "cogapp", "--check", *references], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
