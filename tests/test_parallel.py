"""The run.pl-like job runner and the bash option parser."""
import subprocess
import sys

from kdhybrid.parallel import main, run_jobs


def test_jobs_run_with_one_log_each(tmp_path):
    out = tmp_path / "out"
    rc = main(["--max-jobs-run", "2", "JOB=1:3", str(tmp_path / "log/x.JOB.log"), "echo", "job JOB", ">", f"{out}.JOB"])
    assert rc == 0
    for j in (1, 2, 3):
        assert (tmp_path / f"out.{j}").read_text() == f"job {j}\n"
        log = (tmp_path / f"log/x.{j}.log").read_text()
        assert log.startswith(f"# echo 'job {j}' > {out}.{j}")
        assert "# Ended (code 0)" in log


def test_failed_jobs_are_named(tmp_path, capsys):
    rc = main(["JOB=1:4", str(tmp_path / "log/f.JOB.log"), "test", "JOB", "-ne", "3"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 / 4 failed" in err and "f.3.log" in err and "f.2.log" not in err
    assert "# Ended (code 1)" in (tmp_path / "log/f.3.log").read_text()


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
