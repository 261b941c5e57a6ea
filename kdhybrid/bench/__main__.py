"""``python -m kdhybrid.bench <name>``: run one benchmark and print its figures.

Available: posterior-io, fbank, train-throughput, decode-rtf, dump, slurm-overhead, sequence.
"""
import argparse
import sys

from kdhybrid.bench import decode_rtf, dump, fbank, posterior_io, sequence, slurm_overhead, train_throughput

BENCHES = {"posterior-io": posterior_io, "fbank": fbank, "train-throughput": train_throughput,
           "decode-rtf": decode_rtf, "dump": dump, "slurm-overhead": slurm_overhead, "sequence": sequence}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench", description=__doc__)
    p.add_argument("name", choices=sorted(BENCHES))
    args, rest = p.parse_known_args()
    return BENCHES[args.name].main(rest)


if __name__ == "__main__":
    sys.exit(main())
