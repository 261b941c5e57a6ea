"""A subset of a Kaldi data dir (Kaldi's utils/subset_data_dir.sh): the N shortest
utterances (by utt2dur), as Kaldi's recipes train their monophone systems.

e.g.: python -m kdhybrid.bin.subset_data_dir --shortest 1000 data/train data/train_1kshort
"""
import argparse
import sys
from pathlib import Path


def main() -> int:
    from kdhybrid.io.datadir import read_data_dir, subset_data_dir, validate_data_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shortest", type=int, required=True, help="number of utterances, shortest first (ties: data-dir order)")
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    a = p.parse_args()
    dd = read_data_dir(a.data_dir)
    if not dd.utt2dur:
        raise SystemExit(f"subset_data_dir: {a.data_dir}/utt2dur: missing (needed for --shortest)")
    order = sorted(range(len(dd.utts)), key=lambda i: (float(dd.utt2dur[dd.utts[i]].split()[0]), i))
    keep = sorted(dd.utts[i] for i in order[: a.shortest])
    out = Path(a.out_dir)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    subset_data_dir(a.data_dir, keep, out)
    n = validate_data_dir(out)
    print(f"subset_data_dir: {out}: the {n['utterances']} shortest utterances of {a.data_dir} ({n['speakers']} speakers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
