"""Start N data-parallel ranks of a module (a minimal ``torchrun`` that also knows Slurm).

Outside Slurm it starts N local processes with torchrun's variables (RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=a free port); inside a Slurm job (e.g. one
that ``steps/slurm.py --num-tasks N`` submitted) it runs ``srun --ntasks N``, one rank per
task, and each rank takes its rank, the world size and the rendezvous from Slurm's
variables. It exits non-zero if any rank fails (the others are stopped).
The logic is :mod:`kdhybrid.parallel.ranks`.

e.g.: python -m kdhybrid.bin.launch --nproc 2 -m kdhybrid.bin.train_nnet --config conf/tdnn.yaml ...
"""
import argparse
import sys


def main() -> int:
    from kdhybrid.parallel.ranks import RendezvousError, launch_ranks

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("-m", dest="module", required=True, help="the module to run; everything after it is its arguments")
    argv = sys.argv[1:]
    if "-m" not in argv or argv.index("-m") + 1 >= len(argv):
        p.error("give -m <module> [args...]")
    i = argv.index("-m")
    a = p.parse_args(argv[: i + 2])
    if a.nproc < 1:
        p.error(f"--nproc must be at least 1, got {a.nproc}")
    try:
        return launch_ranks(a.nproc, a.module, argv[i + 2 :])
    except RendezvousError as e:
        print(f"launch: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
