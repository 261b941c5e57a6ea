"""The run.pl-like job runner, what it shares with the Slurm runner (command line, logs,
the Slurm config file, data-parallel ranks from Slurm's variables: no cluster needed here;
tests/test_slurm.py runs them against a real one) and the bash option parser."""
import subprocess
import sys
from pathlib import Path

import pytest

from kdhybrid.parallel import main, run_jobs
from kdhybrid.parallel.core import UsageError, parse_runner_args, read_log_status


def test_jobs_run_with_one_log_each(tmp_path):
    out = tmp_path / "out"
    rc = main(["--max-jobs-run", "2", "JOB=1:3", str(tmp_path / "log/x.JOB.log"), "echo", "job JOB", ">", f"{out}.JOB"])
    assert rc == 0
    for j in (1, 2, 3):
        assert (tmp_path / f"out.{j}").read_text() == f"job {j}\n"
        log = (tmp_path / f"log/x.{j}.log").read_text()
        assert log.startswith(f"# echo 'job {j}' > {out}.{j}")
        assert log.splitlines()[-2] == "# Accounting: time=0 threads=1"
        assert log.endswith(" with status 0\n") and read_log_status(str(tmp_path / f"log/x.{j}.log")) == 0


def test_failed_jobs_are_named(tmp_path, capsys):
    rc = main(["JOB=1:4", str(tmp_path / "log/f.JOB.log"), "test", "JOB", "-ne", "3"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 / 4 failed" in err and "f.3.log" in err and "f.2.log" not in err
    assert read_log_status(str(tmp_path / "log/f.3.log")) == 1


def test_bounded_concurrency(tmp_path):
    # Each job appends start/end markers; with one slot they never interleave.
    stamp = tmp_path / "stamps"
    res = run_jobs(str(tmp_path / "l.JOB.log"), ["echo", "s", ">>", str(stamp), ";", "sleep", "0.05", ";", "echo", "e", ">>", str(stamp)], "JOB=1:4", max_jobs_run=1)
    assert [r.returncode for r in res] == [0, 0, 0, 0]
    assert stamp.read_text().split() == ["s", "e"] * 4


def test_parse_options(tmp_path, repo):
    script = tmp_path / "s.sh"
    script.write_text(
        f"""nj=4
max_active=7000
use_gpu=false
help_message="Usage: s.sh <a>
e.g.: s.sh --nj 2 x"
. {repo}/steps/parse_options.sh || exit 1
echo "$nj $max_active $use_gpu $@"
"""
    )
    run = lambda *a: subprocess.run(["bash", str(script), *a], capture_output=True, text=True)
    r = run("--nj", "8", "--max-active", "100", "pos1", "pos2")
    assert r.returncode == 0 and r.stdout.strip() == "8 100 false pos1 pos2"
    r = run("--bogus", "1")
    assert r.returncode == 1 and "invalid option --bogus" in r.stderr and "e.g.: s.sh" in r.stderr
    r = run("--use-gpu", "yes")
    assert r.returncode == 1 and "true or false" in r.stderr
    cfg = tmp_path / "c.conf"
    cfg.write_text("nj=3\n")
    assert run("--config", str(cfg), "z").stdout.strip() == "3 7000 false z"
    r = run("--help")
    assert r.returncode == 0 and "Usage: s.sh" in r.stderr


def test_run_py_entry_point(tmp_path, repo, venv_env):
    r = subprocess.run([sys.executable, str(repo / "steps/run.py"), str(tmp_path / "a.log"), "false"], env=venv_env, capture_output=True, text=True)
    assert r.returncode == 1 and "1 / 1 failed" in r.stderr


def test_parse_options_config_variable(tmp_path, repo):
    """A script with its own `config` variable gets --config as a value, not sourced."""
    script = tmp_path / "s.sh"
    script.write_text(f"config=conf/a.yaml\nnj=1\n. {repo}/steps/parse_options.sh || exit 1\necho \"$config $nj\"\n")
    r = subprocess.run(["bash", str(script), "--config", "conf/b.yaml", "--nj", "2"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "conf/b.yaml 2"


def test_runner_command_line():
    c = parse_runner_args(["--mem", "2G", "TASK=2:4", "--max-jobs-run", "1", "exp/log/a.TASK.log", "echo", "TASK", "a b", "|", "wc"])
    assert c.options == {"mem": "2G", "max_jobs_run": "1"} and (c.var, c.jobs) == ("TASK", [2, 3, 4])
    assert c.log_for(3) == "exp/log/a.3.log" and c.command_for(3) == "echo 3 'a b' | wc"
    c = parse_runner_args(["a.log", "true"])
    assert (c.var, c.jobs, c.command_for(1)) == (None, [1], "true")
    with pytest.raises(UsageError, match="would all write the one log x.log"):
        parse_runner_args(["JOB=1:2", "x.log", "true"])
    with pytest.raises(UsageError, match="end before start"):
        parse_runner_args(["JOB=3:2", "x.JOB.log", "true"])
    with pytest.raises(UsageError, match="--mem needs a value"):
        parse_runner_args(["--mem"])
    with pytest.raises(UsageError, match="--max-jobs-run takes a positive integer, got 'x'"):
        parse_runner_args(["--max-jobs-run", "x", "a.log", "true"]).int_option("max_jobs_run")


def test_run_py_rejects_unknown_option_and_ignores_queue_options(tmp_path, capsys):
    assert main(["--bogus", "1", str(tmp_path / "a.log"), "true"]) == 1
    assert "unknown option --bogus" in capsys.readouterr().err
    assert main(["--mem", "2G", "--gpu", "1", "--num-threads", "3", str(tmp_path / "a.log"), "true"]) == 0
    assert "threads=3" in (tmp_path / "a.log").read_text()


def test_slurm_config_maps_options_like_slurm_pl(tmp_path):
    from kdhybrid.parallel.slurm import DEFAULT_CONFIG, SlurmConfig

    cfg = SlurmConfig.parse(
        "command sbatch --export=ALL -A speech  # the account\n"
        "option mem=* --mem-per-cpu $0\noption mem=0\n"
        "default gpu=0\noption gpu=0 -p cpu\noption gpu=* -p gpu --gres=gpu:$0\n", "conf/slurm.conf")
    assert cfg.command == ["sbatch", "--export=ALL", "-A", "speech"]
    assert cfg.sbatch_flags({}) == ["-p", "cpu"]
    assert cfg.sbatch_flags({"mem": "4G", "gpu": "2", "max_jobs_run": "3"}) == ["-p", "gpu", "--gres=gpu:2", "--mem-per-cpu", "4G"]
    assert cfg.sbatch_flags({"mem": "0"}) == ["-p", "cpu"]
    with pytest.raises(UsageError, match=r"--num-threads 4: not described in conf/slurm.conf .*option num_threads=\*"):
        cfg.sbatch_flags({"num_threads": "4"})
    with pytest.raises(UsageError, match=r"c.conf:2: cannot parse 'memory 4G'"):
        SlurmConfig.parse("command sbatch\nmemory 4G\n", "c.conf")
    with pytest.raises(UsageError, match=r"c.conf: no 'command sbatch"):
        SlurmConfig.parse("option mem=* --mem $0\n", "c.conf")
    with pytest.raises(UsageError, match=r"c.conf:2: 'option mem=\*' needs \$0"):
        SlurmConfig.parse("command sbatch\noption mem=* --mem 4G\n", "c.conf")
    with pytest.raises(UsageError, match=r"--config .*nope.conf: cannot read it"):
        SlurmConfig.load(str(tmp_path / "nope.conf"))
    # The built-in config: what slurm.pl's default does, plus --num-tasks.
    default = SlurmConfig.parse(DEFAULT_CONFIG, "built-in")
    assert default.sbatch_flags({"num_threads": "2", "num_tasks": "2", "time": "1:00:00"}) == [
        "-p", "shared", "--cpus-per-task", "2", "--ntasks", "2", "--time", "1:00:00"]


def test_slurm_queue_paths():
    from kdhybrid.parallel.slurm import queue_paths

    assert queue_paths(parse_runner_args(["JOB=1:4", "exp/x/log/make_fbank_train.JOB.log", "true"])) == (
        Path("exp/x/q"), "make_fbank_train")
    assert queue_paths(parse_runner_args(["out/a.log", "true"])) == (Path("out/q"), "a")


def test_ranks_from_slurm_variables():
    from kdhybrid.parallel.ranks import RendezvousError, expand_hostlist, in_slurm_batch, rendezvous_from_env, srun_argv

    assert expand_hostlist("gpu[01-03,07],cpu5,n[8-9]x") == ["gpu01", "gpu02", "gpu03", "gpu07", "cpu5", "n8x", "n9x"]
    step = {"SLURM_JOB_ID": "1234", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
            "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NODELIST": "node[07-08]", "SLURM_NTASKS": "4"}
    rv = rendezvous_from_env(step)
    assert (rv.rank, rv.local_rank, rv.world_size, rv.master_addr, rv.source) == (3, 1, 4, "node07", "slurm")
    assert rv.master_port == 20000 + (1234 * 16) % 20000 and rv.init_method == f"tcp://node07:{rv.master_port}"
    assert rendezvous_from_env(dict(step, MASTER_ADDR="h", MASTER_PORT="5")).init_method == "tcp://h:5"
    # A batch script has the job's task count but no step: it is one process, which starts the ranks.
    batch = {k: v for k, v in step.items() if not k.startswith("SLURM_STEP")}
    assert rendezvous_from_env(batch) is None and in_slurm_batch(batch) and not in_slurm_batch(step)
    assert srun_argv(4, ["python", "-m", "x"], batch)[:3] == ["srun", "--ntasks", "4"]
    with pytest.raises(RendezvousError, match="has 4 task.*--num-tasks 8"):
        srun_argv(8, ["python"], batch)
    # torchrun's variables win; a run of one is no run.
    assert rendezvous_from_env(dict(step, RANK="0", WORLD_SIZE="2", MASTER_ADDR="a", MASTER_PORT="7")).source == "env"
    assert rendezvous_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    with pytest.raises(RendezvousError, match="MASTER_PORT is not set"):
        rendezvous_from_env({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "a"})
