"""Kaldi-style parallel jobs: ``run.pl`` semantics, run locally with a bounded pool.

A step runs N jobs as::

    $cmd JOB=1:N exp/foo/log/bar.JOB.log python -m kdhybrid.bin.bar data/split4/JOB ...

Every ``JOB`` in the log name and in the command becomes the job number. Each job's
stdout and stderr go to its own log, framed as run.pl frames them (the command, start
time, ``# Accounting: time=...``, ``# Ended (code N)``). At most ``max_jobs_run`` jobs
run at a time. If any job fails, the runner says which jobs failed and where their logs
are, and exits non-zero. A cluster runner (slurm) can replace it by keeping the same
command line.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?::(\d+))?$")


@dataclass
class JobResult:
    job: int
    returncode: int
    log: str
    seconds: float


def quote_arg(arg: str) -> str:
    """Quote like run.pl: an argument with whitespace (or empty) is single-quoted; others,
    pipes and redirections included, pass through so the shell sees them."""
    if arg and not re.search(r"\s", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def parse_job_range(spec: str) -> Tuple[str, int, int]:
    """``JOB=1:4`` -> ("JOB", 1, 4); ``JOB=3`` -> ("JOB", 3, 3)."""
    m = _RANGE.match(spec)
    if not m:
        raise ValueError(f"bad job range {spec!r}; expected e.g. JOB=1:4")
    var, a = m.group(1), int(m.group(2))
    b = int(m.group(3)) if m.group(3) is not None else a
    if b < a:
        raise ValueError(f"bad job range {spec!r}: end before start")
    return var, a, b


def _run_one(job: int, var: Optional[str], log_pattern: str, argv: Sequence[str]) -> JobResult:
    sub = (lambda s: s.replace(var, str(job))) if var else (lambda s: s)
    log = sub(log_pattern)
    cmd = " ".join(quote_arg(sub(a)) for a in argv)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    env = dict(os.environ)
    if var:
        env[var] = str(job)
    with open(log, "w", encoding="utf-8") as f:
        f.write(f"# {cmd} \n# Started at {time.ctime(start)}\n#\n")
        f.flush()
        rc = subprocess.call(["bash", "-c", "set -o pipefail; " + cmd], stdout=f, stderr=subprocess.STDOUT, env=env)
        elapsed = time.time() - start
        f.write(f"# Accounting: time={int(round(elapsed))} threads=1\n# Ended (code {rc}) at {time.ctime()}, elapsed time {int(round(elapsed))} seconds\n")
    return JobResult(job, rc, log, elapsed)


def run_jobs(
    log_pattern: str,
    argv: Sequence[str],
    job_range: Optional[str] = None,
    max_jobs_run: Optional[int] = None,
) -> List[JobResult]:
    """Run the command once per job; returns the results in job order (never raises on
    a failed job: callers look at ``returncode``)."""
    if job_range:
        var, a, b = parse_job_range(job_range)
        jobs = list(range(a, b + 1))
    else:
        var, jobs = None, [1]
    if not argv:
        raise ValueError("run_jobs: no command given")
    workers = max(1, min(len(jobs), max_jobs_run or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futs = [pool.submit(_run_one, j, var, log_pattern, argv) for j in jobs]
        return [f.result() for f in futs]


def main(args: Optional[Sequence[str]] = None) -> int:
    """``run.pl``-compatible command line:
    ``[--max-jobs-run N] [--num-threads N] [--mem X] [JOB=1:N] <log> <command...>``."""
    args = list(sys.argv[1:] if args is None else args)
    usage = (
        "Usage: steps/run.py [--max-jobs-run N] [JOB=1:N] <log-file> <command> [<args>...]\n"
        "e.g.:  steps/run.py JOB=1:4 exp/mono/log/align.JOB.log python -m kdhybrid.bin.align ... data/split4/JOB\n"
        "Runs the jobs locally, at most N at a time (default: the number of cores); one log per job."
    )
    max_jobs = None
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt in ("-h", "--help"):
            print(usage)
            return 0
        if not args:
            print(usage, file=sys.stderr)
            return 1
        val = args.pop(0)
        if opt == "--max-jobs-run":
            max_jobs = int(val)
        elif opt in ("--num-threads", "--mem", "--gpu", "--config", "--time"):
            pass  # accepted for compatibility with Kaldi's queue options; local jobs ignore them
        else:
            print(f"steps/run.py: unknown option {opt}\n{usage}", file=sys.stderr)
            return 1
    job_range = None
    if args and _RANGE.match(args[0]):
        job_range = args.pop(0)
    if len(args) < 2:
        print(usage, file=sys.stderr)
        return 1
    log, argv = args[0], args[1:]
    results = run_jobs(log, argv, job_range, max_jobs)
    failed = [r for r in results if r.returncode != 0]
    if failed:
        logs = ", ".join(r.log for r in failed)
        print(f"steps/run.py: {len(failed)} / {len(results)} failed, see {logs}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
