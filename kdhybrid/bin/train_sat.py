"""Train a speaker-adapted triphone GMM-HMM with fMLLR (Kaldi's steps/train_sat.sh) on the
features of an LDA+MLLT alignment dir: per-speaker transforms re-estimated during EM,
final.alimdl, trans.*.

e.g.: python -m kdhybrid.bin.train_sat --nj 2 2500 15000 data/train data/lang exp/tri2_ali exp/tri3
"""
import argparse
import sys

from kdhybrid.bin._common import setup_logging
from kdhybrid.gmm.sat import SatConfig, train_sat
from kdhybrid.gmm.train import configure_em


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="seeds the Gaussian mix-up's perturbations")
    p.add_argument("--num-iters", type=int, default=35)
    p.add_argument("--fmllr-iters", default="2,4,6,12", help="iterations that re-estimate the speakers' fMLLR")
    p.add_argument("--silence-weight", type=float, default=0.0, choices=[0.0, 1.0],
                   help="0: silence frames do not count in the fMLLR statistics")
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
    cfg = SatConfig(num_leaves=a.num_leaves, tot_gauss=a.tot_gauss, min_count=a.min_count, silence_weight=a.silence_weight,
                    fmllr_iters=tuple(int(i) for i in a.fmllr_iters.split(",") if i))
    configure_em(cfg.em, a.num_iters, a.seed, a.beam, a.retry_beam)
    s = train_sat(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, a.nj, cfg)
    fb = s["fmllr_initial"].get("fallback", {})
    print(f"train_sat: {a.exp_dir}: {s['num_pdfs']} leaves, {s['num_gauss']} Gaussians, log-like/frame "
          f"{s['final_like_per_frame']:.3f}, {s['aligned_utterances']} utterances aligned, "
          f"{len(s['align_failed'])} failed, {s['speakers']} speakers ({len(fb)} with too little data for fMLLR), "
          f"{s['seconds']} s (tree {s['tree_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
