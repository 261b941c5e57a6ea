import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def venv_env() -> dict:
    """Environment for subprocesses: the running interpreter's bin dir first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory):
    """The synth_en recipe's data stages on the tiny tier, in a temporary copy of the recipe:
    corpus (0), lang (1) and features (3); stage 2's big LMs are left out (too slow for a
    test), a small LM is made by the tests that need one. Returns the recipe dir."""
    import shutil
    import subprocess

    d = tmp_path_factory.mktemp("recipe") / "s5"
    src = REPO / "egs" / "synth_en" / "s5"
    d.mkdir()
    for name in ("run.sh", "path.sh", "cmd.sh"):
        shutil.copy(src / name, d / name)
    shutil.copytree(src / "conf", d / "conf")
    (d / "steps").symlink_to(REPO / "steps")
    (d / "local").symlink_to(REPO / "local")
    env = dict(os.environ, KDHYBRID_ROOT=str(REPO))
    for args in (["--stop-stage", "1"], ["--stage", "3", "--stop-stage", "3"]):
        r = subprocess.run(["bash", "run.sh", "--tier", "tiny", *args], cwd=d, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return d
