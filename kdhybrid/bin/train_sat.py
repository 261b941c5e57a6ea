"""Train a speaker-adapted triphone GMM-HMM with fMLLR (Kaldi's steps/train_sat.sh) on the
features of an LDA+MLLT alignment dir: per-speaker transforms re-estimated during EM,
final.alimdl, trans.*.

e.g.: python -m kdhybrid.bin.train_sat --nj 2 2500 15000 data/train data/lang exp/tri2_ali exp/tri3
"""
import sys

from kdhybrid.bin._common import setup_logging, triphone_parser, triphone_summary
from kdhybrid.gmm.sat import SatConfig, train_sat
from kdhybrid.gmm.train import configure_em


def main() -> int:
    p = triphone_parser(__doc__, num_iters=35)
    p.add_argument("--fmllr-iters", default="2,4,6,12", help="iterations that re-estimate the speakers' fMLLR")
    p.add_argument("--silence-weight", type=float, default=0.0, choices=[0.0, 1.0],
                   help="0: silence frames do not count in the fMLLR statistics")
    a = p.parse_args()
    setup_logging(a.exp_dir)
    cfg = SatConfig(num_leaves=a.num_leaves, tot_gauss=a.tot_gauss, min_count=a.min_count, silence_weight=a.silence_weight,
                    fmllr_iters=tuple(int(i) for i in a.fmllr_iters.split(",") if i))
    configure_em(cfg.em, a.num_iters, a.seed, a.beam, a.retry_beam)
    s = train_sat(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, a.nj, cfg)
    fb = s["fmllr_initial"].get("fallback", {})
    print(triphone_summary("train_sat", a.exp_dir, s, f", {s['speakers']} speakers ({len(fb)} with too little data for fMLLR)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
