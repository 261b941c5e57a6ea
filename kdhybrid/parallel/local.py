"""Kaldi's ``run.pl`` for kdhybrid (``steps/run.py``): the jobs run on this machine, at most
``--max-jobs-run`` at a time (default: the number of cores).

A step runs N jobs as::

    $cmd JOB=1:N exp/foo/log/bar.JOB.log python -m kdhybrid.bin.bar data/split4/JOB ...

The command line, the JOB substitution, the logs and the failure report are the ones every
runner shares (:mod:`kdhybrid.parallel.core`); :mod:`kdhybrid.parallel.slurm` runs the same
command line on a Slurm cluster. The queue options of Kaldi's runners (``--mem``, ``--gpu``,
``--time``, ``--config``, ``--num-tasks``) are accepted and ignored here; ``--num-threads``
only shows in the logs' accounting line.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence

from kdhybrid.parallel.core import JobResult, RunnerCall, UsageError, parse_runner_args, run_job, runner_main

PROG = "steps/run.py"
USAGE = (
    "Usage: steps/run.py [--max-jobs-run N] [JOB=1:N] <log-file> <command> [<args>...]\n"
    "e.g.:  steps/run.py JOB=1:4 exp/mono/log/align.JOB.log python -m kdhybrid.bin.align ... data/split4/JOB\n"
    "Runs the jobs locally, at most N at a time (default: the number of cores); one log per job.\n"
    "--num-threads, --mem, --gpu, --time, --num-tasks and --config (the queue options of\n"
    "steps/slurm.py) are accepted and ignored."
)
#: Options of the cluster runners that a local run accepts and ignores.
IGNORED_OPTIONS = ("num_threads", "mem", "gpu", "time", "config", "num_tasks")


def run_local(call: RunnerCall) -> List[JobResult]:
    """Run every job of ``call`` here, at most ``--max-jobs-run`` at a time; the results
    are in job order (a failed job does not raise: look at ``returncode``)."""
    unknown = [o for o in call.options if o != "max_jobs_run" and o not in IGNORED_OPTIONS]
    if unknown:
        raise UsageError(f"unknown option --{unknown[0].replace('_', '-')}")
    max_jobs = call.int_option("max_jobs_run")
    threads = call.int_option("num_threads", 1)
    jobs = call.jobs
    workers = max(1, min(len(jobs), max_jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futs = [pool.submit(run_job, call, j, threads) for j in jobs]
        return [f.result() for f in futs]


def run_jobs(
    log_pattern: str,
    argv: Sequence[str],
    job_range: Optional[str] = None,
    max_jobs_run: Optional[int] = None,
) -> List[JobResult]:
    """Run the command once per job of ``job_range`` (e.g. ``JOB=1:4``) here; returns the
    results in job order (never raises on a failed job: callers look at ``returncode``)."""
    args: List[str] = []
    if max_jobs_run:
        args += ["--max-jobs-run", str(max_jobs_run)]
    if job_range:
        args.append(job_range)
    if not argv:
        raise UsageError("run_jobs: no command given")
    return run_local(parse_runner_args([*args, log_pattern, *argv]))


def main(args: Optional[Sequence[str]] = None) -> int:
    """``run.pl``-compatible command line (see :data:`USAGE`)."""
    return runner_main(PROG, USAGE, sys.argv[1:] if args is None else args, run_local)
