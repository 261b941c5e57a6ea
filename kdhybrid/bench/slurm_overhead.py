"""The overhead of ``steps/slurm.py`` over ``steps/run.py``: the wall time of one call with
an array of ``--tasks`` jobs (each ``sleep --job-seconds``) through each runner, as a recipe
step makes it, repeated ``--repeats`` times (medians printed), and their difference, the
per-call overhead (also per task).

The cluster is the one ``SLURM_CONF`` names when set (``--cluster env``), else a
single-node cluster started for the run and stopped after it (``--cluster local``, which
needs root and the Slurm packages; see :mod:`kdhybrid.parallel.localcluster`). One untimed
call warms the cluster up first. On such a cluster the floor is Slurm's scheduling: the
controller starts pending jobs on a one-second tick, once for the first wave of tasks and
once more for each wave after it (4 one-CPU tasks on 2 cores are 2 waves).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional


def _time_call(runner: Path, tasks: int, job_seconds: float, workdir: Path, env: Dict[str, str], tag: str) -> float:
    argv = [sys.executable, str(runner), f"JOB=1:{tasks}", str(workdir / f"log/{tag}.JOB.log"), "sleep", str(job_seconds)]
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return elapsed


def main(argv: Optional[List[str]] = None) -> int:
    import kdhybrid
    from kdhybrid.parallel.localcluster import LocalSlurmCluster

    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench slurm-overhead", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=4, help="jobs in the array (default: 4)")
    p.add_argument("--job-seconds", type=float, default=0.0, help="what each job sleeps (default: 0)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per runner (default: 5)")
    p.add_argument("--cluster", choices=["auto", "env", "local"], default="auto",
                   help="env: the cluster of $SLURM_CONF; local: start one here; auto: env when SLURM_CONF is set")
    args = p.parse_args(argv)

    steps = Path(kdhybrid.__file__).resolve().parents[1] / "steps"
    if not (steps / "slurm.py").is_file():
        print(f"slurm-overhead: no {steps}/slurm.py: run it from a kdhybrid source checkout", file=sys.stderr)
        return 1
    mode = args.cluster if args.cluster != "auto" else ("env" if os.environ.get("SLURM_CONF") else "local")
    cluster = LocalSlurmCluster.start() if mode == "local" else None
    try:
        env = cluster.env() if cluster else dict(os.environ)
        env["PYTHONPATH"] = str(steps.parent) + os.pathsep + env.get("PYTHONPATH", "")
        times: Dict[str, List[float]] = {"run.py": [], "slurm.py": []}
        with tempfile.TemporaryDirectory(prefix="kd-slurm-bench.", dir=os.getcwd() if mode == "env" else None) as d:
            work = Path(d)
            _time_call(steps / "slurm.py", args.tasks, args.job_seconds, work, env, "warmup")
            for i in range(args.repeats):
                for name in times:
                    times[name].append(_time_call(steps / name, args.tasks, args.job_seconds, work, env, f"{name}{i}"))
    finally:
        if cluster:
            cluster.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    where = "a single-node cluster started for this run" if cluster else f"the cluster of SLURM_CONF={os.environ['SLURM_CONF']}"
    print(f"slurm-overhead: one call of JOB=1:{args.tasks} 'sleep {args.job_seconds:g}', {args.repeats} calls per runner, "
          f"{os.cpu_count()} cores, on {where}")
    for name, v in times.items():
        print(f"  steps/{name:9s} wall median {med[name]:.2f} s  (min {min(v):.2f}, max {max(v):.2f}; "
              f"{' '.join(f'{x:.2f}' for x in v)})")
    over = med["slurm.py"] - med["run.py"]
    print(f"  overhead of slurm.py over run.py: {over:.2f} s per call ({over / args.tasks:.2f} s per task)")
    return 0
