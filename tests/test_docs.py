"""The documentation site: every `bash` and `python` code block of the getting-started and how-to pages, and the
README's tour, runs (in a fresh directory, in order, as a reader would paste them), and `mkdocs build --strict` builds the site with its API
reference from the docstrings, without a warning (a broken link or a missing object fails)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / "getting-started.md", *sorted((ROOT / "docs" / "how-to").glob("*.md"))]


@pytest.fixture
def registries_restored():
    """What a page registers (the plugin page registers a method) leaves the registries with the test."""
    from ebmlab.plugins import restored

    with restored():
        yield


def run_block(lang: str, block: str, namespace: dict) -> None:
    """Run one code block as a reader pasting it would: bash stops at the first failing command, python blocks of a
    page share one namespace (mktestdocs finds the blocks; its `check_codeblock` only cleans them, it runs nothing)."""
    if lang == "bash":
        r = subprocess.run(["bash", "-e", "-u", "-o", "pipefail", "-c", block], capture_output=True, text=True)
        assert r.returncode == 0, f"{block}\n--- exit {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    else:
        exec(compile(block, "<docs>", "exec"), namespace)  # noqa: S102 - the documentation's own examples


@pytest.fixture
def reader_shell(tmp_path, monkeypatch, ebmlab_on_path):
    """A reader's shell: in a fresh directory, this environment's python on PATH, and before it the ``ebmlab`` that
    starts from the preloaded fork server (``conftest.ebmlab_on_path``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent), prepend=":")
    monkeypatch.setenv("PATH", str(ebmlab_on_path), prepend=":")
    return tmp_path


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_the_pages_code_runs(page, reader_shell, monkeypatch, registries_restored):
    mktestdocs = pytest.importorskip("mktestdocs")
    blocks = {lang: mktestdocs.grab_code_blocks(page.read_text(), lang=lang) for lang in ("bash", "python")}
    assert any(blocks.values()) or page.stem in ("scale-out", "gpu"), f"{page.name} has no code that runs"
    # in the order of the page: a python block may write the file a bash block then trains on
    text = page.read_text()
    ordered = sorted(((text.index(b), lang, b) for lang, bs in blocks.items() for b in bs), key=lambda t: t[0])
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")  # a real module: dataclasses look theirs up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for _, lang, block in ordered:
        run_block(lang, block, module.__dict__)


def test_a_failing_block_fails():
    """The runner is a check that can fail: a failing command in the middle of a block, or a raising statement."""
    with pytest.raises(AssertionError, match="exit 1"):
        run_block("bash", "true\nfalse\ntrue\n", {})
    with pytest.raises(ZeroDivisionError):
        run_block("python", "x = 1\ny = x / 0\n", {})


def test_the_readme_tour_runs(reader_shell):
    """The README's short tour runs as it stands (its set-up commands are what CI itself runs)."""
    mktestdocs = pytest.importorskip("mktestdocs")
    tmp_path = reader_shell
    text = (ROOT / "README.md").read_text()
    tour = mktestdocs.grab_code_blocks(text[text.index("## A short tour"):], lang="bash")[0]
    assert "ebmlab train" in tour and "ebmlab report" in tour
    run_block("bash", tour, {})
    assert (tmp_path / "report.html").stat().st_size > 10_000 and (tmp_path / "bench-mini" / "results.md").exists()


def test_the_installed_console_script_runs_a_command(tmp_path):
    """The pages' and the tour's ``ebmlab`` commands run through the fork server (``conftest.ebmlab_on_path``); the
    console script that ``pip install`` puts beside python runs one itself: its output and its exit status."""
    exe = Path(sys.executable).parent / "ebmlab"
    if not exe.exists():
        pytest.skip(f"no console script at {exe} (pip install -e . writes it)")
    r = subprocess.run([str(exe), "list"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "vgan" in r.stdout and "grid25" in r.stdout, r.stderr[-2000:]
    bad = subprocess.run([str(exe), "train", "vgann", "--data", "ring8"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert bad.returncode == 2 and "did you mean 'vgan'" in bad.stderr and "Traceback" not in bad.stderr


def test_the_shim_passes_arguments_directory_environment_output_and_status(reader_shell):
    """The fork-server ``ebmlab`` of the docs' tests is the command as typed: it runs in the shell's directory with
    the shell's environment, its output goes where the shell redirects it, and a failure stops a block."""
    tmp_path = reader_shell
    r = subprocess.run(["bash", "-e", "-c", "mkdir sub && cd sub && ebmlab list > l.txt; "
                        "EBMLAB_CLAIMS=$PWD/none ebmlab claims list 2> err.txt || echo status=$?; "
                        "ebmlab train vgann --data ring8"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout.strip() == "status=2", r.stderr
    assert "vgan" in (tmp_path / "sub" / "l.txt").read_text()
    assert f"{tmp_path / 'sub' / 'none'} does not exist" in (tmp_path / "sub" / "err.txt").read_text()
    assert "did you mean 'vgan'" in r.stderr


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
    assert "latent_samples" in api and "ais_log_z" in api and "rejection" in api  # the samplers are documented
    assert not re.search(r":(class|func|meth|mod|data|attr):`", api)  # the docstrings' roles render (hooks/sphinx_roles.py)
    assert 'href="#ebmlab.trainer.train"' in api  # ... as links where the page documents the target
