"""Per-speaker CMVN statistics of a data dir, in Kaldi's format (cmvn.scp).

e.g.: python -m kdhybrid.bin.compute_cmvn_stats data/train fbank/cmvn_train.ark fbank/cmvn_train.scp
"""
import argparse
import sys

from kdhybrid.features.cmvn import accumulate_cmvn_stats
from kdhybrid.io.datadir import read_data_dir
from kdhybrid.io.tables import KaldiFormatError, MatrixWriter, read_matrix


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data_dir")
    p.add_argument("ark")
    p.add_argument("scp")
    args = p.parse_args()
    dd = read_data_dir(args.data_dir)
    if not dd.feats_scp:
        print(f"compute_cmvn_stats: {args.data_dir}/feats.scp missing: run steps/make_fbank.sh first", file=sys.stderr)
        return 1
    with MatrixWriter(args.ark, args.scp) as w:
        for spk, utts in dd.spk2utt.items():
            missing = [u for u in utts if u not in dd.feats_scp]
            if missing:
                raise KaldiFormatError(f"{args.data_dir}/feats.scp: no features for utterance '{missing[0]}' of speaker '{spk}'")
            w.write(spk, accumulate_cmvn_stats(read_matrix(dd.feats_scp[u]) for u in utts))
    print(f"compute_cmvn_stats: {len(dd.spk2utt)} speakers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
