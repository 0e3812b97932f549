"""Every number the README reports traces to a result file that is in the repository."""

import fnmatch
import pathlib
import re
import subprocess

import pytest

pytestmark = pytest.mark.docs  # a test of the documentation, not of the product

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _tracked_files() -> list[str]:
    """Files git tracks (a fresh clone's view); the working tree when git is unavailable."""
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = []
    return listed or [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]


def _results_section() -> str:
    match = re.search(r"^## Results\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, "the README has a '## Results' section"
    return match.group(1)


# A repository path the README names: a file under one of our folders, not inside another path
# (`DIR/plots/...` is a sweep's output folder) and not a placeholder.
REPO_PATH = re.compile(
    r"(?<![\w/.])((?:bench|plots|docs|notebooks|tests|upstream)/[\w./*\-]+"
    r"\.(?:json|csv|png|md|py|ipynb|sh|txt))"
)


def test_readme_names_only_committed_files():
    """Result files, figures, scripts and subfolders alike: a fresh clone holds each one."""
    named = set(REPO_PATH.findall(README))
    assert {"json", "csv", "png"} <= {name.rsplit(".", 1)[1] for name in named}
    tracked = _tracked_files()
    missing = [name for name in sorted(named) if not fnmatch.filter(tracked, name)]
    assert not missing, f"the README names files that are not in the repository: {missing}"


def test_every_results_row_names_its_file():
    rows = [line for line in _results_section().splitlines() if line.startswith("|")]
    body = [row for row in rows[2:]]  # header and separator first
    assert body, "the Results table has rows"
    for row in body:
        assert "bench/results/" in row, f"a Results row names no result file: {row}"


def test_gitignore_keeps_bench_results():
    """`results/` once matched bench/results/ too; only the sweep output folder is ignored."""
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "bench/results/example.json"], cwd=ROOT, capture_output=True
    )
    assert ignored.returncode == 1, "bench/results/ is ignored by .gitignore"
