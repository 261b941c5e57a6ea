"""One task of a ``steps/slurm.py`` array job, run by its job script on a cluster node::

    python -m kdhybrid.parallel.task <q/name.json> <task number>

Runs that job's command with its log written exactly as ``steps/run.py`` writes it (plus
the host and the Slurm job in the header), then leaves the exit status in a marker file
(written atomically) that the waiting runner looks for. Exits 0 when the command succeeded,
else 1.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import List, Optional

from kdhybrid.parallel.core import run_job
from kdhybrid.parallel.slurm import TaskSpec, marker_path, write_atomic


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or not argv[1].isdigit():
        print("Usage: python -m kdhybrid.parallel.task <spec.json> <task number>", file=sys.stderr)
        return 1
    spec = TaskSpec.from_json(Path(argv[0]).read_text())
    task = int(argv[1])
    os.chdir(spec.cwd)
    job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID", "0")
    header = [f"Running on {socket.gethostname()}", f"Slurm job {job_id}_{task} (job id {os.environ.get('SLURM_JOB_ID', '?')})"]
    result = run_job(spec.call, task, spec.threads, header)
    write_atomic(marker_path(spec.marker_dir, job_id, task), f"{result.returncode}\n")
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
