"""The documentation site: every `bash` and `python` code block of the getting-started and how-to pages runs (in a
fresh directory, in order, as a reader would paste them), and `mkdocs build --strict` builds the site with its API
reference from the docstrings, without a warning (a broken link or a missing object fails)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / "getting-started.md", *sorted((ROOT / "docs" / "how-to").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_the_pages_code_runs(page, tmp_path, monkeypatch):
    mktestdocs = pytest.importorskip("mktestdocs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent), prepend=":")  # this environment's ebmlab
    blocks = {lang: mktestdocs.grab_code_blocks(page.read_text(), lang=lang) for lang in ("bash", "python")}
    assert any(blocks.values()) or page.stem in ("scale-out", "gpu"), f"{page.name} has no code that runs"
    # in the order of the page: a python block may write the file a bash block then trains on
    text = page.read_text()
    ordered = sorted(((text.index(b), lang, b) for lang, bs in blocks.items() for b in bs), key=lambda t: t[0])
    for _, lang, block in ordered:
        mktestdocs.check_codeblock(f"```{lang}\n{block}```", lang=lang)


def test_the_site_builds_strictly(tmp_path):
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        pytest.skip("mkdocs is not installed (pip install -e '.[test]' installs it)")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    r = subprocess.run([mkdocs, "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "check_method" in api and "register_method" in api and "Placement" in api
