"""The README and the docs/ pages: every file they name is in the repository, every link between
them resolves, every number in a results table names its result file, and the README stays a
short first read that opens with the two commands (the test command being the one CI runs)."""

import fnmatch
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.docs  # a test of the documentation, not of the product

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The pages the README sends readers to. The blog post (docs/post*.md) has its own tests
# (tests/test_post.py).
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("post"))
DOCS = [ROOT / "README.md", *PAGES]
README_MAX_LINES = 350
FIRST_SCREEN_LINES = 25


def _tracked_files() -> list[str]:
    """Files git tracks (a fresh clone's view); the working tree when git is unavailable."""
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = []
    return listed or [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no '## {title}' section"
    return match.group(1)


def _without_code(text: str) -> str:
    """Markdown outside fenced code blocks (a `# comment` in a bash block is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", _without_code(path.read_text()), re.M)
    return {_anchor(h) for h in headings}


# A repository path a page names: a file under one of our folders, not inside another path
# (`DIR/plots/...` is a sweep's output folder, `../bench/...` a relative link) and not a placeholder.
REPO_PATH = re.compile(
    r"(?<![\w/.])((?:bench|plots|docs|notebooks|tests|upstream)/[\w./*\-]+"
    r"\.(?:json|csv|png|md|py|ipynb|sh|txt))"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_pages_name_only_committed_files(page):
    """Result files, figures, scripts and subfolders alike: a fresh clone holds each one."""
    named = set(REPO_PATH.findall(page.read_text()))
    tracked = _tracked_files()
    missing = [name for name in sorted(named) if not fnmatch.filter(tracked, name)]
    assert not missing, f"{page.name} names files that are not in the repository: {missing}"


def test_pages_cite_result_files():
    named = {name for page in DOCS for name in REPO_PATH.findall(page.read_text())}
    assert {"json", "csv", "png"} <= {name.rsplit(".", 1)[1] for name in named}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_links_resolve(page):
    """Every relative link reaches a committed file, and its #anchor a heading of that page."""
    tracked = set(_tracked_files())
    broken = []
    for target in LINK.findall(_without_code(page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        try:
            rel = file.relative_to(ROOT).as_posix()
        except ValueError:
            broken.append(f"{target} (outside the repository)")
            continue
        if rel not in tracked:
            broken.append(f"{target} (no such committed file)")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{page.name} has broken links: {broken}"


def test_every_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(README)}
    unlinked = [p.name for p in PAGES if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks.md"])
def test_every_results_row_names_its_file(page):
    section = _section((ROOT / page).read_text(), "Results")
    rows = [line for line in section.splitlines() if line.startswith("|")]
    body = rows[2:]  # header and separator first
    assert body, f"the Results table of {page} has rows"
    for row in body:
        assert "bench/results/" in row, f"a Results row of {page} names no result file: {row}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_have_no_words_about_how_the_project_is_worked_on(page):
    """The pattern the post's tests apply to the post, README.md and PR.md, on the docs pages."""
    from test_post import PROCESS_WORDS

    found = sorted({match.group(0) for match in PROCESS_WORDS.finditer(page.read_text())})
    assert not found, f"{page.name} speaks of how the project is worked on: {found}"


def test_readme_is_short():
    lines = README.count("\n") + 1
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_readme_opens_with_the_two_commands():
    """The main job and the tests on the first screen; the test command is the one CI runs."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = ci[ci.index("# README test command:") + 1].strip()
    first_screen = README.splitlines()[:FIRST_SCREEN_LINES]
    assert test_command in first_screen, f"the first screen lacks CI's test command: {test_command}"
    assert "pip install -r requirements.txt && python sweep.py" in first_screen


def test_gitignore_keeps_bench_results():
    """`results/` once matched bench/results/ too; only the sweep output folder is ignored."""
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "bench/results/example.json"], cwd=ROOT, capture_output=True
    )
    assert ignored.returncode == 1, "bench/results/ is ignored by .gitignore"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("fasttd3x") is None, reason="no fasttd3x package to import")
def test_readme_example_runs():
    """The README's first example, as written, trains its four agents and all of them solve."""
    example = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    assert "from fasttd3x import make_config, make_train" in example
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", example], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    finals = [float(x) for x in re.findall(r"-?\d+\.\d*", done.stdout.strip().splitlines()[-1])]
    assert len(finals) == 4 and min(finals) >= -200, done.stdout
