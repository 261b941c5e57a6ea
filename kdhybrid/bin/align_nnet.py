"""Align one data split with any acoustic model (one job of steps/align_nnet.sh;
nnet3-align-compiled): a neural model (final.pt), an ensemble (ensemble.json) or a GMM-HMM.

e.g.: python -m kdhybrid.bin.align_nnet --acwt 0.1 exp/tri1 data/lang data/train/split2utt/1 exp/tdnn exp/tdnn_ali/ali.1.gz
Utterances that fail to align are listed in the log and counted, never silently dropped.
"""
import argparse
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--acwt", type=float, default=0.1)
    p.add_argument("--beam", type=float, default=10.0)
    p.add_argument("--retry-beam", type=float, default=40.0)
    p.add_argument("--transition-scale", type=float, default=1.0)
    p.add_argument("--self-loop-scale", type=float, default=0.1)
    p.add_argument("tree_dir", help="GMM dir (final.pkl) of the model's tree and transition model")
    p.add_argument("lang_dir")
    p.add_argument("data_dir")
    p.add_argument("model_dir")
    p.add_argument("ali")
    a = p.parse_args()
    import torch

    from kdhybrid.decode.acoustic import load_scorer
    from kdhybrid.decode.align import align_with_scorer
    from kdhybrid.gmm.align import AlignOptions, Lang, write_alignment_archive
    from kdhybrid.gmm.model import GmmHmm
    from kdhybrid.io.tables import read_text_table

    torch.set_num_threads(1)
    scorer = load_scorer(a.model_dir, data_dir=a.data_dir)
    print(f"align_nnet: model {scorer.description}", file=sys.stderr)
    opts = AlignOptions(beam=a.beam, retry_beam=a.retry_beam, acoustic_scale=a.acwt, transition_scale=a.transition_scale,
                        self_loop_scale=a.self_loop_scale)
    text = read_text_table(Path(a.data_dir) / "text", min_fields=1)
    results = align_with_scorer(scorer, GmmHmm.load(a.tree_dir), Lang(a.lang_dir), a.data_dir, text, opts)
    print(write_alignment_archive(a.ali, results, "align_nnet"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
