# How jobs run. Change the one word below to move every step's jobs:
#   steps/run.py    on this machine, at most --max-jobs-run at a time (Kaldi's run.pl)
#   steps/slurm.py  on a Slurm cluster, one array job per step (Kaldi's slurm.pl); its
#                   options (--mem, --num-threads, --gpu, --time) become sbatch flags
#                   through conf/slurm.conf (README, "Running on a Slurm cluster");
#                   run.py accepts and ignores them
runner=steps/run.py
export train_cmd="$runner"
export decode_cmd="$runner"
# Neural network training: on this machine it runs in the foreground with its progress on
# the console; on a cluster each training is one job (exp/<model>/log/train_nnet.log).
if [ "$runner" = steps/run.py ]; then
  export nnet_cmd=
else
  export nnet_cmd="$runner --num-threads 2"
fi
