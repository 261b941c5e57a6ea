# How jobs run. steps/run.py runs them on this machine, at most --max-jobs-run at a time,
# like Kaldi's run.pl; a cluster runner with the same command line can replace it.
export train_cmd="steps/run.py"
export decode_cmd="steps/run.py"
