"""Shared fixtures.

Order: no test depends on another's leftovers or on the order tests run in. The session
fixtures (``tiny_recipe``, ``gmm``, ``slurm_cluster``) and the module fixture ``members``
(test_distill) are built once; everything else a test reads it makes itself, in its own
tmp_path or in the shared recipe dir through idempotent helpers that make a thing only if it
is missing and always make it the same way (``ensure_small_graph``; test_distill's
``logit_teacher`` and ``teacher_dump_k5``), so any order, a single test alone
(``pytest tests/test_gmm.py::test_lmrescore``) or a shuffled run sees the same inputs. GMM
training, graphs and decodes are bit-reproducible, so a thing made by one test or another
is the same bytes either way.
"""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from slurm_fixture import slurm_cluster  # noqa: E402,F401  (the session's Slurm cluster)


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


@pytest.fixture(scope="session")
def gmm(tiny_recipe):
    """The tiny recipe with its GMM stages run (4-5: mono, tri1, tri1's alignments, cuts).
    Returns (recipe dir, run) where run(cmd) runs a shell command there with path.sh."""
    import subprocess

    env = dict(os.environ, KDHYBRID_ROOT=str(REPO))

    def run(cmd, fails=False):
        """stdout of ``cmd``; with ``fails`` the command must fail and its stderr is returned."""
        r = subprocess.run(["bash", "-c", ". ./path.sh && " + cmd], cwd=tiny_recipe, env=env, capture_output=True, text=True)
        if fails:
            assert r.returncode != 0, (cmd, r.stdout[-3000:])
            return r.stderr
        assert r.returncode == 0, (cmd, r.stdout[-3000:], r.stderr[-3000:])
        return r.stdout
    # tri1 labels the tests' neural models (tri2 and tri3 have their own tests: test_gmm_sat.py)
    run("./run.sh --tier tiny --stage 4 --stop-stage 5 --gmm-final tri1")
    return tiny_recipe, run


def ensure_small_graph(gmm):
    """exp/tri1/graph_small: HCLG of a 3-gram on the tiny tier's transcripts (the recipe's big
    LMs are too slow for a test)."""
    d, run = gmm
    if (d / "exp/tri1/graph_small/HCLG.k2.pt").is_file():
        return d / "exp/tri1/graph_small"
    run("python - <<'PY'\n"
        "from kdhybrid.lang.ngram import train_arpa, format_lm\n"
        "from kdhybrid.io.tables import read_text_table\n"
        "t=[v for s in ('train','dev') for v in read_text_table(f'data/{s}/text', min_fields=1).values()]\n"
        "open('data/local/small.txt','w').write('\\n'.join(t)+'\\n')\n"
        "train_arpa('data/local/small.txt', 3, 'data/local/small.arpa')\n"
        "format_lm('data/lang', 'data/local/small.arpa', 'data/lang_test_small')\n"
        "train_arpa('data/local/small.txt', 4, 'data/local/small4.arpa')\n"
        "format_lm('data/lang', 'data/local/small4.arpa', 'data/lang_test_small4')\n"
        "PY")
    run("steps/mkgraph.sh data/lang_test_small exp/tri1 exp/tri1/graph_small")
    return d / "exp/tri1/graph_small"


def copy_recipe(src: Path, dst: Path, exp_dirs=()) -> Path:
    """A recipe dir ``dst`` sharing ``src``'s code, configs and features (symlinks), with its
    own copy of the data dirs (without splits, cuts and test LMs) and of ``exp_dirs``."""
    import shutil

    dst.mkdir(parents=True)
    for name in ("path.sh", "cmd.sh", "steps", "local", "conf", "fbank"):
        (dst / name).symlink_to(src / name)
    shutil.copytree(src / "data", dst / "data", ignore=shutil.ignore_patterns("split*", "cuts*", "lang_test*"))
    (dst / "exp").mkdir()
    for e in exp_dirs:
        shutil.copytree(src / "exp" / e, dst / "exp" / e)
    return dst


def exp_md5s(d: Path) -> dict:
    """md5 of every file of an exp dir itself (not log/, nor graphs and decodes below it)."""
    import hashlib

    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def alignment_bytes(d: Path) -> bytes:
    """Every ali.N.gz of an ali dir, uncompressed, in job order."""
    import gzip

    n = int((d / "num_jobs").read_text())
    return b"".join(gzip.decompress((d / f"ali.{j}.gz").read_bytes()) for j in range(1, n + 1))
