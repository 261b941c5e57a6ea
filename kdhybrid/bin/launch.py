"""Start N local processes of a module for data-parallel training (a minimal ``torchrun``).

torch 1.13's ``torchrun`` fails on Python 3.11 (its ``Std`` IntFlag lookup returns None for
0 under 3.11's enum rules), so kdhybrid starts its ranks itself: it sets RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR (127.0.0.1) and MASTER_PORT (a free port) and runs
``python -m <module> <args>`` once per rank; it exits non-zero if any rank fails (the
others are stopped). With a newer torch, ``torchrun --standalone`` does the same job.

e.g.: python -m kdhybrid.bin.launch --nproc 2 -m kdhybrid.bin.train_nnet --config conf/tdnn.yaml ...
"""
import argparse
import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("-m", dest="module", required=True, help="the module to run; everything after it is its arguments")
    argv = sys.argv[1:]
    if "-m" not in argv or argv.index("-m") + 1 >= len(argv):
        p.error("give -m <module> [args...]")
    i = argv.index("-m")
    a = p.parse_args(argv[: i + 2])
    a.args = argv[i + 2 :]
    port = free_port()
    procs = []
    for rank in range(a.nproc):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(a.nproc), LOCAL_WORLD_SIZE=str(a.nproc),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-m", a.module, *a.args], env=env))
    rc = 0
    while procs:
        for pr in list(procs):
            r = pr.poll()
            if r is None:
                continue
            procs.remove(pr)
            if r != 0:
                rc = r
                for other in procs:
                    other.terminate()
        time.sleep(0.2)
    return rc


if __name__ == "__main__":
    sys.exit(main())
