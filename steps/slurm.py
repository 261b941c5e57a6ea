#!/usr/bin/env python3
# Kaldi's slurm.pl for kdhybrid: runs JOB=1:N jobs on a Slurm cluster as one array job,
# one log per job, and waits for them; options map to sbatch flags through conf/slurm.conf.
# Usage: steps/slurm.py [--mem 4G] [--num-threads N] [--gpu N] [--max-jobs-run N] [JOB=1:N] <log-file> <command> [<args>...]
# (thin wrapper; the logic is kdhybrid.parallel.slurm, which is tested against a real Slurm)
import sys

from kdhybrid.parallel.slurm import main

sys.exit(main())
