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
    assert len(links) >= 4
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


# ------------------------------------------------------------------ words, links, faithful numbers
# Words about how the project is worked on rather than about the project. Checked in the rendered
# post, PR.md and whatever README.md is (kept generic: it is rewritten independently).
PROCESS_WORDS = re.compile(
    r"\bsessions?\b|\bissue #\d+|\bthe CEO\b|\b(?:a|another|the other) developer\b|"
    r"\bhelper(?:s)?\b(?! (?:function|functions|module|script|class)\b)|\bwas measured by\b|"
    r"\bmeasured by an? (?:earlier|previous|other)\b|\bnotes kept beside\b|"
    r"\blent (?:GPU|machine|device)s?\b|\bworktree\b|\bclaims audit\b",
    re.IGNORECASE,
)
# Markdown links and images: [text](target) and ![alt](target).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(?:> )?```.*?^(?:> )?```", re.MULTILINE | re.DOTALL)  # quoted blocks too
README = ROOT / "README.md"
PR = ROOT / "upstream" / "purejaxrl" / "PR.md"


def _documents() -> dict[pathlib.Path, str]:
    return {path: path.read_text() for path in (render_post.POST, README, PR) if path.exists()}


@pytest.mark.parametrize("name", ["docs/post.md", "README.md", "upstream/purejaxrl/PR.md"])
def test_no_words_about_how_the_project_is_worked_on(name):
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} does not exist")
    found = sorted({match.group(0) for match in PROCESS_WORDS.finditer(path.read_text())})
    assert not found, f"{name} speaks of how the project is worked on: {found}"


def test_process_words_pattern():
    for text in ("an earlier session", "see issue #38", "the CEO asked", "another developer",
                 "a helper ran it", "it was measured by someone", "on the lent GPU"):  # fmt: skip
        assert PROCESS_WORDS.search(text), text
    for text in ("a helper function", "sessionless", "lentils", "developed on CPU", "issue tracker"):
        assert not PROCESS_WORDS.search(text), text


@pytest.mark.parametrize("name", ["docs/post.md", "README.md", "upstream/purejaxrl/PR.md"])
def test_every_relative_link_resolves_to_a_tracked_file(name):
    """Links outside fenced code blocks (a block may hold text for another repository's tree)."""
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} does not exist")
    tracked = set(_tracked())
    text = FENCE.sub("", path.read_text())
    targets = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:|#|mailto:", t)]
    for target in targets:
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.exists(), f"{name} links {target}, which does not exist"
        if resolved.is_file():
            assert str(resolved.relative_to(ROOT)) in tracked, f"{name} links {target}, not committed"


def test_post_and_pr_link_figures():
    assert len(render_post.linked_figures(render_post.POST.read_text())) >= 4
    assert len(render_post.linked_figures(PR.read_text())) >= 2


# Result files the post names that are analyses of other committed results, not device runs.
NO_DEVICE = {"bench/results/search_fitness_pendulum.json"}


def _device(record):
    if isinstance(record, dict):
        if "device" in record:
            return record["device"]
        return next((d for d in map(_device, record.values()) if d), None)
    return None


def test_every_result_file_the_post_names_names_its_device():
    text = render_post.POST.read_text()
    for name in sorted(set(re.findall(r"bench/results/[\w./-]+\.json", text)) - NO_DEVICE):
        assert _device(json.loads((ROOT / name).read_text())), f"{name} names no device"


def _results_copy(tmp_path) -> pathlib.Path:
    """bench/results without its images: the render reads JSON, CSV and logs only."""
    import shutil

    target = tmp_path / "results"
    shutil.copytree(render_post.RESULTS, target, ignore=shutil.ignore_patterns("*.png"))
    return target


def _set(record, path, value):
    *parents, last = path
    for key in parents:
        record = record[key]
    record[last] = value


# (file, key path, new value, text the post must then hold): the render substitutes each file's
# number, not a number written into the template or the script.
FAITHFUL = [
    ("heartbeat_cost_cpu.json", ("rows", 0, "all_seconds", "with"), [1.0, 2.5, 9.0], "2.50 s with reports"),
    ("heartbeat_cost_cpu.json", ("rows", 1, "all_seconds", "without"), [30.0, 31.0, 40.0], "against 31.00 s"),
    ("reference_h200.json", ("reference_iterations_per_second", 0, "iterations_per_second"), 12.3,
     "12.3 (T1)"),
    ("reference_h200.json", ("reference_iterations_per_second", 2, "iterations_per_second"), 7.7,
     "is recorded at 7.7 iterations/s"),
    ("peer_pendulum_our_settings_cpu.json", ("rejax_td3", "pooled", "run_seconds"), 61.2, "in 61 s (TD3)"),
    ("peer_pendulum_cpu.json", ("rejax_sac", "pooled", "env_steps_to_threshold"), 4800,
     "(4,800 against 9,600)"),
    ("reference_published_curves_T1.json", ("curves", "FastTD3", "return", 1), 18.25, "published 18.25"),
    ("reference_published_curves_T1.json", ("curves", "FastTD3", "time", 2), 700.4, "23.36 after 700 s"),
    ("reference_published_curves_T1.json", ("reference_code_eval_envs", "value"), 512,
     "each of 512 environments"),
    ("memory.json", ("tasks", "T1JoystickFlatTerrain", "state_bytes_per_agent"), 2**34, "| 16.00 GiB |"),
    ("gpu_proof_scaling_NVIDIA_H200.json", ("numbers", 0, "agent_iterations_per_second"), 1234.5,
     "made 1,234.5 agent-iterations/s"),
    ("reference_throughput_cpu.json", ("ours", "iterations_per_second_each"), [50.0, 60.0, 70.0],
     "ours at 60.00 (3 runs, median)"),
    ("gpu_proof_learn2_NVIDIA_H200.json", ("numbers", 1, "eval_return_per_seed"), [15.5], "4 of 5 agents"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, path, value, expected", FAITHFUL, ids=[f"{c[0]}:{c[1][-1]}" for c in FAITHFUL]
)
def test_render_takes_each_number_from_its_file(tmp_path, monkeypatch, name, path, value, expected):
    results = _results_copy(tmp_path)
    record = json.loads((results / name).read_text())
    _set(record, path, value)
    (results / name).write_text(json.dumps(record))
    monkeypatch.setattr(render_post, "RESULTS", results)
    text, _ = render_post.render()
    assert expected in text or expected in " ".join(text.split())


def test_identical_search_rows_are_explained_only_when_pbt_kept_the_random_pick(tmp_path, monkeypatch):
    text = render_post.POST.read_text()
    explanation = "kept the random search's pick through every exploit step"
    assert text.count(explanation) == 1  # CartpoleBalance only
    results = _results_copy(tmp_path)
    name = "search_study_CartpoleBalance.json"
    study = json.loads((results / name).read_text())
    study["methods"]["pbt"]["pick"][-1] = {**study["methods"]["pbt"]["pick"][-1], "TAU": 0.5}
    (results / name).write_text(json.dumps(study))
    monkeypatch.setattr(render_post, "RESULTS", results)
    assert explanation not in render_post.render()[0]


def test_post_numbers_equal_their_files():
    """A few numbers read straight from the files, independently of the render's code."""
    import statistics

    text = render_post.POST.read_text()
    flat = " ".join(text.split())
    beat = {
        row["eval_interval"]: row
        for row in json.loads((render_post.RESULTS / "heartbeat_cost_cpu.json").read_text())["rows"]
    }
    assert (
        f"the medians were {statistics.median(beat[100]['all_seconds']['with']):.2f} s with reports" in flat
    )
    assert f"and {statistics.median(beat[100]['all_seconds']['without']):.2f} s without" in flat
    curves = json.loads((render_post.RESULTS / "reference_published_curves_T1.json").read_text())
    published = json.loads((render_post.RESULTS / "reference_published.json").read_text())
    fasttd3 = curves["curves"]["FastTD3"]
    for steps, value in published["mean_eval_return"]["T1JoystickFlatTerrain"].items():
        index = fasttd3["env_step"].index(float(steps))
        assert round(fasttd3["return"][index], 2) == value  # the two copies of the data agree
    assert f"published {fasttd3['return'][1]:.2f}" in flat
    peer = json.loads((render_post.RESULTS / "peer_pendulum_our_settings_cpu.json").read_text())
    for key, label in (("rejax_td3", "TD3"), ("rejax_sac", "SAC")):
        assert f"{peer[key]['pooled']['run_seconds']:.0f} s ({label})" in flat
    assert f"against our {peer['ours']['pooled']['run_seconds']:.0f} s" in flat


def test_pr_numbers_are_the_files_own():
    text = " ".join(PR.read_text().replace("> ", " ").split())
    lines = len((ROOT / "upstream" / "purejaxrl" / "fasttd3.py").read_text().splitlines())
    assert f"({lines} lines," in text
    for task in ("pendulum", "inverted_pendulum"):
        record = json.loads((render_post.RESULTS / f"upstream_{task}.json").read_text())
        per_seed = record["last_10pct_return_per_seed"]
        row = (f"| {len(per_seed)} | {record['last_10pct_return_mean']:.1f} | {min(per_seed):.1f} | "
               f"{max(per_seed):.1f} |")  # fmt: skip
        assert row in text, row
        assert f"{record['seconds_with_compile']:.0f} s including compilation" in text
        assert f"{record['env_steps']:,} env steps per seed" in text
        checked = json.loads((render_post.RESULTS / f"upstream_{task}_purejaxrl_wrappers.json").read_text())
        assert checked["equal_to_stand_in"] is True
        assert checked["last_10pct_return_per_seed"] == per_seed
    pendulum = json.loads((render_post.RESULTS / "upstream_pendulum.json").read_text())
    assert ", ".join(f"{x:.1f}" for x in pendulum["last_10pct_return_per_seed"]) in text
