"""Kaldi-style job runners: ``steps/run.py`` (this machine, :mod:`.local`) and
``steps/slurm.py`` (a Slurm cluster, :mod:`.slurm`) take the same command line and write the
same logs (:mod:`.core`); :mod:`.ranks` starts data-parallel training ranks here or through
srun; :mod:`.localcluster` starts a single-node Slurm cluster for tests and benchmarks.
"""
from kdhybrid.parallel.core import JobResult, parse_job_range, quote_arg  # noqa: F401
from kdhybrid.parallel.local import main, run_jobs  # noqa: F401
