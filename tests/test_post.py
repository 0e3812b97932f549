"""The blog post (docs/post.md) is what docs/render_post.py makes of the committed results."""

import fnmatch
import importlib.util
import json
import pathlib
import re
import subprocess

import pytest

pytestmark = pytest.mark.docs  # a test of the documentation, not of the product

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render_post", ROOT / "docs" / "render_post.py")
render_post = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_post)

# A repository path the post names (as tests/test_docs.py reads the README), globs included.
REPO_PATH = re.compile(
    r"(?<![\w/.])((?:bench|plots|docs|notebooks|tests|upstream)/[\w./*\-]+"
    r"\.(?:json|csv|png|md|py|ipynb|sh|txt))"
)


def _tracked() -> list[str]:
    return subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def test_committed_post_equals_render():
    text, _ = render_post.render()
    assert render_post.POST.read_text() == text, "docs/post.md is stale: run python docs/render_post.py"


def test_post_names_only_committed_files():
    """Every file the post names is tracked, except the optional results it reports as missing."""
    text = render_post.POST.read_text()
    named = set(REPO_PATH.findall(text))
    assert {"json", "csv"} <= {name.rsplit(".", 1)[1] for name in named}
    tracked = _tracked()
    missing = {name for name in named if not fnmatch.filter(tracked, name)}
    optional = {f"bench/results/{name}" for name in render_post.OPTIONAL}
    assert missing <= optional, (
        f"the post names files that are not in the repository: {sorted(missing - optional)}"
    )
    for name in missing:
        assert not list(ROOT.glob(name)), f"{name} exists but is not committed"
        assert "not measured yet" in text


def test_every_linked_figure_exists_and_is_tracked():
    text = render_post.POST.read_text()
    links = render_post.linked_figures(text)
    assert len(links) >= 5
    tracked = set(_tracked())
    for link in links:
        path = (render_post.DOCS / link).resolve()
        assert path.is_file(), f"docs/post.md links {link}, which does not exist"
        assert str(path.relative_to(ROOT)) in tracked, f"{link} is not committed"


def test_missing_optional_file_is_soft_and_malformed_is_loud(tmp_path, monkeypatch):
    monkeypatch.setattr(render_post, "RESULTS", tmp_path)
    assert render_post.read_optional("reference_learning_cpu.json") is None
    assert "not measured yet" in render_post.reference_learning_text()
    assert "not measured yet" in render_post.search_text()
    (tmp_path / "reference_learning_cpu.json").write_text("{not json")
    with pytest.raises(SystemExit, match="reference_learning_cpu.json"):
        render_post.reference_learning_text()
    (tmp_path / "reference_learning_cpu.json").write_text(json.dumps({"benchmark": "reference_learning"}))
    with pytest.raises(SystemExit, match="has no tasks"):
        render_post.reference_learning_text()


def test_optional_results_are_picked_up(tmp_path, monkeypatch):
    monkeypatch.setattr(render_post, "RESULTS", tmp_path)
    record = {
        "tasks": {
            "CartpoleSwingup": {
                "runs": {"reference": {"0": {}, "1": {}}, "ours": {"0": {}, "1": {}}},
                "final_returns": {"reference": [500.0, 700.0], "ours": [650.0, 750.0]},
                "status": {"complete": True},
            }
        }
    }
    (tmp_path / "reference_learning_cpu.json").write_text(json.dumps(record))
    assert (
        "| CartpoleSwingup | 2 / 2 | 600.00 | 700.00 | n/a | n/a | yes |"
        in render_post.reference_learning_text()
    )
    speeds = {
        "env": "CartpoleSwingup",
        "reference": {"iterations_per_second": 2.0},
        "ours": {"iterations_per_second": 3.0},
    }
    (tmp_path / "reference_throughput_cpu.json").write_text(json.dumps(speeds))
    assert "1.50x" in render_post.reference_cpu_text()
    assert "not measured yet" in render_post.search_text()
    (tmp_path / "search_study_Pendulum-v1.json").write_text(json.dumps({"methods": {}}))
    assert "`bench/results/search_study_Pendulum-v1.json`" in render_post.search_text()
    heldout = {"seeds": 32, "solved": 0.96875, "mean": -150.25, "worst": -412.5}
    study = {"task": "Pendulum-v1", "space": ["TAU=log:0.005,0.5"], "tuning_seed": 0, "heldout_seed": 1,
             "heldout_seeds": 32, "complete": False,
             "methods": {"grid": {"tuning_agent_iterations": 128000, "share_of_grid_compute": 1.0,
                                  "heldout": heldout}}}  # fmt: skip
    (tmp_path / "search_study_Pendulum-v1.json").write_text(json.dumps(study))
    text = render_post.search_text()
    assert "| grid | 128,000 | 100.0% | 31/32 | -150.2 | -412.5 |" in text and "partial" in text
    study.update(solved_at=-200.0, overrides=["NUM_ENVS=8"], defaults={"heldout": dict(heldout, solved=0.5)})
    (tmp_path / "search_study_Pendulum-v1.json").write_text(json.dumps(study))
    text = render_post.search_text()
    assert "| defaults (no search) | 0 | 0% | 16/32 | -150.2 | -412.5 |" in text
    assert "Solved: a final eval return of at least -200.0." in text and "`NUM_ENVS=8`" in text
