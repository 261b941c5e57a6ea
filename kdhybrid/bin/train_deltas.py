"""Train a triphone GMM-HMM on delta features (Kaldi's steps/train_deltas.sh): decision
tree from earlier alignments, converted alignments, EM with realignment and mix-up.

e.g.: python -m kdhybrid.bin.train_deltas --nj 2 1000 8000 data/train data/lang exp/mono exp/tri1
"""
import argparse
import sys

from kdhybrid.bin._common import setup_logging
from kdhybrid.gmm.train import DeltasConfig, configure_em, train_deltas


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="seeds the Gaussian mix-up's perturbations")
    p.add_argument("--num-iters", type=int, default=25)
    p.add_argument("--beam", type=float, default=10.0)
    p.add_argument("--retry-beam", type=float, default=40.0)
    p.add_argument("--min-count", type=float, default=100.0, help="frames on each side of a tree split")
    p.add_argument("num_leaves", type=int)
    p.add_argument("tot_gauss", type=int)
    p.add_argument("data_dir")
    p.add_argument("lang_dir")
    p.add_argument("ali_dir")
    p.add_argument("exp_dir")
    a = p.parse_args()
    setup_logging(a.exp_dir)
    cfg = DeltasConfig(num_leaves=a.num_leaves, tot_gauss=a.tot_gauss, min_count=a.min_count)
    configure_em(cfg.em, a.num_iters, a.seed, a.beam, a.retry_beam)
    s = train_deltas(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, a.nj, cfg)
    print(f"train_deltas: {a.exp_dir}: {s['num_pdfs']} leaves, {s['num_gauss']} Gaussians, log-like/frame "
          f"{s['final_like_per_frame']:.3f}, {s['aligned_utterances']} utterances aligned, "
          f"{len(s['align_failed'])} failed, {s['seconds']} s (tree {s['tree_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
