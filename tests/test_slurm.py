"""steps/slurm.py against a real single-node Slurm (the session's ``slurm_cluster``: munged,
slurmctld and slurmd started by tests/slurm_fixture.py): array jobs and their logs, the
job limit, failures, impossible requests, cancellation on SIGTERM, the tiny tier's features
byte for byte as with steps/run.py, data-parallel training (steps/train_nnet.sh) through
srun, and the fixture's own clean-up."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kdhybrid.parallel.core import read_log_status

# No test of a cluster should wait on it for long: a hang is a failure.
TIMEOUT = 120


def slurm_py(cluster, repo, venv_env, *args, cwd=None, **kw):
    """Run steps/slurm.py against the cluster; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(repo / "steps/slurm.py"), *map(str, args)], env=cluster.env(venv_env),
                          cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, **kw)


def squeue_ids(cluster):
    r = subprocess.run(["squeue", "-h", "-o", "%A"], env=cluster.env(), capture_output=True, text=True, check=True)
    return r.stdout.split()


def test_array_logs_and_failures(slurm_cluster, repo, venv_env, tmp_path):
    r = slurm_py(slurm_cluster, repo, venv_env, "JOB=1:4", tmp_path / "log/x.JOB.log", "echo", "job JOB of",
                 "$SLURM_ARRAY_TASK_ID", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for j in range(1, 5):
        log = (tmp_path / f"log/x.{j}.log").read_text().splitlines()
        # run.py's header (the command with JOB replaced), the node, the output, the trailer.
        assert log[0] == f"# echo 'job {j} of' $SLURM_ARRAY_TASK_ID " and log[1].startswith("# Started at ")
        assert "# Running on " in log[2] and f"_{j} " in log[3]
        assert f"job {j} of {j}" in log and log[-1].endswith(" with status 0")
    script = (tmp_path / "q/x.sh").read_text()
    assert "--array 1-4 " in script and "-p shared" in script
    assert not list((tmp_path / "q/markers").iterdir())  # the runner removed the markers it read
    # A failing task is named by its log, the others are not; the exit status is 1.
    r = slurm_py(slurm_cluster, repo, venv_env, "JOB=1:4", tmp_path / "log/f.JOB.log", "test", "JOB", "-ne", "3", cwd=tmp_path)
    assert r.returncode == 1
    assert f"1 / 4 failed, see {tmp_path}/log/f.3.log" in r.stderr and "f.2.log" not in r.stderr
    assert read_log_status(str(tmp_path / "log/f.3.log")) == 1 and read_log_status(str(tmp_path / "log/f.4.log")) == 0


def test_max_jobs_run_runs_tasks_one_after_another(slurm_cluster, repo, venv_env, tmp_path):
    stamps = tmp_path / "stamps"
    r = slurm_py(slurm_cluster, repo, venv_env, "--max-jobs-run", "1", "JOB=1:4", tmp_path / "log/s.JOB.log",
                 "echo", "s", ">>", stamps, ";", "sleep", "0.3", ";", "echo", "e", ">>", stamps, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert stamps.read_text().split() == ["s", "e"] * 4
    assert "--array 1-4%1 " in (tmp_path / "q/s.sh").read_text()


@pytest.mark.parametrize("option,value,reason", [
    ("--mem", "100000G", "Memory specification can not be satisfied"),  # refused by sbatch
    ("--num-threads", "512", "reason PartitionConfig"),  # accepted, but would pend forever
])
def test_impossible_request_fails_at_once(slurm_cluster, repo, venv_env, tmp_path, option, value, reason):
    t = time.time()
    r = slurm_py(slurm_cluster, repo, venv_env, option, value, "JOB=1:2", tmp_path / "log/m.JOB.log", "true", cwd=tmp_path)
    assert r.returncode == 1 and reason in r.stderr, r.stderr
    assert time.time() - t < 15
    assert squeue_ids(slurm_cluster) == []


def test_unknown_option_names_the_config(slurm_cluster, repo, venv_env, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/slurm.conf").write_text("command sbatch --export=ALL\noption mem=* --mem-per-cpu $0\n")
    r = slurm_py(slurm_cluster, repo, venv_env, "--gpu", "1", tmp_path / "a.log", "true", cwd=tmp_path)
    assert r.returncode == 1 and "--gpu 1: not described in conf/slurm.conf" in r.stderr


def test_task_that_vanishes_is_reported_with_slurms_state(slurm_cluster, tmp_path, monkeypatch):
    """A task killed without writing its status (here it kills its own runner process) is
    found missing from squeue and reported with Slurm's record of it."""
    from kdhybrid.parallel.core import parse_runner_args
    from kdhybrid.parallel.slurm import WaitPolicy, run_slurm

    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.chdir(tmp_path)
    res = run_slurm(parse_runner_args(["JOB=1:2", "log/v.JOB.log", "[", "JOB", "-ne", "2", "]", "||", "kill", "-9", "$PPID"]),
                    WaitPolicy(vanish_grace=0.5))
    assert [r.returncode for r in res] == [0, 1]
    assert res[1].log == "log/v.2.log" and "no status in its log" in res[1].note and "JobState=FAILED" in res[1].note


def test_sigterm_cancels_the_array(slurm_cluster, repo, venv_env, tmp_path):
    p = subprocess.Popen([sys.executable, str(repo / "steps/slurm.py"), "JOB=1:3", str(tmp_path / "log/t.JOB.log"), "sleep", "300"],
                         env=slurm_cluster.env(venv_env), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (tmp_path / "log/t.1.log").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "log/t.1.log").exists(), "the first task never started"
    assert squeue_ids(slurm_cluster)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 128 + signal.SIGTERM and "cancelled Slurm job" in err, err
    assert squeue_ids(slurm_cluster) == []


def test_make_fbank_same_bytes_as_run_py(slurm_cluster, tiny_recipe, venv_env):
    """steps/make_fbank.sh --cmd steps/slurm.py on the tiny tier's dev set writes the same
    archives as the recipe's own run with steps/run.py (same number of jobs)."""
    d = tiny_recipe
    ref = sorted((d / "fbank").glob("raw_fbank_dev.*.ark"))
    assert ref, "the tiny recipe made no dev features"
    env = slurm_cluster.env(dict(venv_env, KDHYBRID_ROOT=str(Path(__file__).resolve().parents[1])))
    subprocess.run("rm -rf data/dev_slurm fbank_slurm && cp -r data/dev data/dev_slurm && rm data/dev_slurm/feats.scp",
                   shell=True, cwd=d, check=True)
    r = subprocess.run(["bash", "-c", f". ./path.sh && steps/make_fbank.sh --nj {len(ref)} --cmd steps/slurm.py "
                        "data/dev_slurm exp/make_fbank/dev_slurm fbank_slurm"],
                       cwd=d, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for n in range(1, len(ref) + 1):
        a = (d / f"fbank/raw_fbank_dev.{n}.ark").read_bytes()
        assert len(a) > 10000 and (d / f"fbank_slurm/raw_fbank_dev_slurm.{n}.ark").read_bytes() == a, n
    assert "Running on" in (d / f"exp/make_fbank/dev_slurm/make_fbank_dev_slurm.{len(ref)}.log").read_text()


def test_train_nnet_under_slurm_matches_one_process(slurm_cluster, repo, venv_env, tmp_path):
    """The data-parallel check of tests/test_nnet.py with its 2 ranks started by
    steps/train_nnet.sh --cmd steps/slurm.py --num-procs 2: one Slurm job of 2 tasks, in which
    kdhybrid.bin.launch starts the ranks through srun and they meet through Slurm's variables."""
    from test_nnet import check_data_parallel

    def two_ranks(config, cuts, exp_dir):
        # The step checks that its inputs exist; with --cuts it reads only the cuts.
        for sub in ("train", "dev"):
            (tmp_path / "cuts" / sub).mkdir(parents=True)
            (tmp_path / "cuts" / sub / "cuts.jsonl.gz").symlink_to(cuts)
        for f in ("data/feats.scp", "ali/final.mdl", "ali/ali.1.gz", "dev/feats.scp", "ali_dev/ali.1.gz"):
            (tmp_path / f).parent.mkdir(exist_ok=True)
            (tmp_path / f).touch()
        (tmp_path / "steps").symlink_to(repo / "steps")
        r = subprocess.run(["bash", "steps/train_nnet.sh", "--cmd", "steps/slurm.py", "--num-procs", "2", "--config", str(config),
                            "--cuts", "cuts", "--dev-data", "dev", "data", "ali", str(exp_dir)],
                           cwd=tmp_path, env=slurm_cluster.env(venv_env), capture_output=True, text=True, timeout=TIMEOUT)
        text = (exp_dir / "log/train_nnet.log").read_text()
        assert r.returncode == 0, r.stderr + text[-3000:]
        assert "--ntasks 2" in (exp_dir / "q/train_nnet.sh").read_text()
        assert "launch: 2 ranks in Slurm job" in text and "(from the Slurm variables)" in text
        return text

    check_data_parallel(tmp_path, venv_env, two_ranks)


INNER_TEST = """
import os, sys, time
sys.path.insert(0, {tests!r})
from slurm_fixture import slurm_cluster  # noqa: F401

def test_inner(slurm_cluster):
    with open({pids!r}, "w") as f:
        f.write(str(slurm_cluster.root) + " " + " ".join(str(p) for p in slurm_cluster.pids.values()))
    if os.environ.get("INNER_MODE") == "hang":
        time.sleep(300)
    assert False, "a failing test"
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_fixture_stops_its_daemons(repo, venv_env, tmp_path, mode):
    """In a pytest session of its own: when its test fails, the fixture stops the daemons it
    started (by pid); when the session is killed (SIGKILL: no finaliser runs), they die too."""
    pids_file = tmp_path / "pids"
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST.format(tests=str(repo / "tests"), pids=str(pids_file))))
    env = dict(venv_env, INNER_MODE=mode)
    p = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_inner.py")],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if mode == "fail":
        out, _ = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 1 and "a failing test" in out, out
    else:
        deadline = time.time() + 60
        while not (pids_file.exists() and len(pids_file.read_text().split()) == 4) and time.time() < deadline:
            time.sleep(0.1)
        p.kill()
        p.wait()
    root, *pids = pids_file.read_text().split()
    pids = [int(x) for x in pids]
    assert len(pids) == 3
    deadline = time.time() + 20
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _alive(pid)]
    # Stopped normally, the fixture removes its directory; a killed session cannot.
    assert Path(root).exists() == (mode == "hang")
    shutil.rmtree(root, ignore_errors=True)
