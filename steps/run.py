#!/usr/bin/env python3
# Kaldi's run.pl for kdhybrid: runs JOB=1:N jobs locally, one log per job.
# Usage: steps/run.py [--max-jobs-run N] [JOB=1:N] <log-file> <command> [<args>...]
# (thin wrapper; the logic is kdhybrid.parallel, which is tested)
import sys

from kdhybrid.parallel import main

sys.exit(main())
