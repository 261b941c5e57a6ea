"""Train an LDA+MLLT triphone GMM-HMM (Kaldi's steps/train_lda_mllt.sh): spliced cepstra,
LDA on the input alignments' pdfs, a new tree, MLLT re-estimated during EM; final.mat.

e.g.: python -m kdhybrid.bin.train_lda_mllt --nj 2 2500 15000 data/train data/lang exp/tri1_ali exp/tri2
"""
import argparse
import sys

from kdhybrid.bin._common import setup_logging
from kdhybrid.gmm.lda_mllt import LdaMlltConfig, train_lda_mllt
from kdhybrid.gmm.train import configure_em


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="seeds the Gaussian mix-up's perturbations")
    p.add_argument("--num-iters", type=int, default=35)
    p.add_argument("--mllt-iters", default="2,4,6,12", help="iterations that re-estimate MLLT")
    p.add_argument("--splice-context", type=int, default=4, help="frames of cepstra spliced on each side")
    p.add_argument("--dim", type=int, default=40, help="LDA output dimension")
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
    cfg = LdaMlltConfig(num_leaves=a.num_leaves, tot_gauss=a.tot_gauss, min_count=a.min_count, lda_dim=a.dim,
                        mllt_iters=tuple(int(i) for i in a.mllt_iters.split(",") if i))
    cfg.feats.splice_context = a.splice_context
    configure_em(cfg.em, a.num_iters, a.seed, a.beam, a.retry_beam)
    s = train_lda_mllt(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, a.nj, cfg)
    print(f"train_lda_mllt: {a.exp_dir}: {s['num_pdfs']} leaves, {s['num_gauss']} Gaussians, log-like/frame "
          f"{s['final_like_per_frame']:.3f}, {s['aligned_utterances']} utterances aligned, "
          f"{len(s['align_failed'])} failed, {s['seconds']} s (tree {s['tree_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
