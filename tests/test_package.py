"""The installable package: a wheel built from this tree holds `fasttd3x` and `purejax_fasttd3`
and nothing else at the top level, declares lower-bounded dependencies (six included), the
cuda12 extra, the Apache-2.0 license and the sweep's console command; and the public API imports."""

import pathlib
import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel of this tree, built offline with the installed setuptools."""
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    proc = subprocess.run([*build, "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("fasttd3x-*.whl")
    with zipfile.ZipFile(path) as whl:
        yield whl


def _dist_info(whl: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in whl.namelist() if n.endswith(f".dist-info/{name}")]
    return whl.read(member).decode()


def test_wheel_installs_only_the_package_and_the_algorithm_file(wheel):
    top = {name.split("/")[0] for name in wheel.namelist() if ".dist-info/" not in name}
    assert top == {"fasttd3x", "purejax_fasttd3.py"}, top
    modules = {pathlib.PurePath(n).stem for n in wheel.namelist() if n.startswith("fasttd3x/")}
    assert {"sweep", "configs", "envs", "networks", "replay", "results", "figures"} <= modules
    assert {"cli", "live", "sinks", "frames", "cluster", "compile_cache", "config_file"} <= modules


def test_wheel_metadata_declares_dependencies_license_and_command(wheel):
    meta = Parser().parsestr(_dist_info(wheel, "METADATA"))
    requires = meta.get_all("Requires-Dist")
    plain = {r.split(">=")[0].strip(): r for r in requires if "extra ==" not in r}
    for name in ("jax", "jaxlib", "flax", "optax", "playground", "mujoco", "mujoco-mjx", "brax", "gymnax",
                 "six", "orbax-checkpoint", "matplotlib", "numpy", "scipy"):  # fmt: skip
        assert name in plain and ">=" in plain[name], (name, requires)
    assert any(r.startswith("jax[cuda12]") and 'extra == "cuda12"' in r for r in requires), requires
    assert "cuda12" in meta.get_all("Provides-Extra")
    for extra, packages in (("pandas", ["pandas"]), ("tensorboard", ["tensorboardX", "tensorboard"]),
                            ("wandb", ["wandb"])):  # fmt: skip
        assert extra in meta.get_all("Provides-Extra"), extra
        for name in packages:  # a lower bound, under the extra's marker
            assert any(r.startswith(f"{name}>=") and f'extra == "{extra}"' in r for r in requires), name
    assert "Apache-2.0" in (meta.get("License-Expression") or meta.get("License") or ""), meta.items()
    assert any(n.endswith("LICENSE") for n in wheel.namelist())
    entry_points = _dist_info(wheel, "entry_points.txt")
    assert "fasttd3x-sweep = fasttd3x.sweep:main" in entry_points, entry_points


def test_public_api_imports_in_a_fresh_interpreter():
    code = (
        "from fasttd3x import make_config, make_train, make_train_loop, load_sweep, __version__\n"
        "from fasttd3x import load_frame, load_live_frame\n"
        "import purejax_fasttd3\n"
        "assert make_train is purejax_fasttd3.make_train\n"
        "train = make_train(make_config('Pendulum-v1', NUM_ENVS=2, BATCH_SIZE=4))\n"
        "print('ok', callable(train))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "ok True" in proc.stdout, proc.stderr[-3000:]


def test_sweep_command_line_help():
    proc = subprocess.run(
        [sys.executable, "-m", "fasttd3x.sweep", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "--grid" in proc.stdout, proc.stderr[-3000:]
