"""Speed-perturbed copies of a Kaldi data dir, combined (Kaldi's
utils/data/perturb_data_dir_speed_3way.sh); features are then computed and the copies aligned
with the GMM (steps/make_fbank.sh, steps/align_fmllr.sh).

e.g.: python -m kdhybrid.bin.perturb_data_dir_speed --factors "0.9 1.0 1.1" data/train data/train_sp
"""
import argparse
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--factors", default="0.9 1.0 1.1")
    p.add_argument("src")
    p.add_argument("dst")
    a = p.parse_args()
    from kdhybrid.data.perturb import speed_perturb_3way
    from kdhybrid.io.tables import read_text_table

    try:
        speed_perturb_3way(a.src, a.dst, [float(f) for f in a.factors.split()])
    except ValueError as e:
        print(f"perturb_data_dir_speed: {e}", file=sys.stderr)
        return 1
    n = len(read_text_table(f"{a.dst}/utt2spk"))
    print(f"perturb_data_dir_speed: {a.dst}: {n} utterances (factors {a.factors})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
