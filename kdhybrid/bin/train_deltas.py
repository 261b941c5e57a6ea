"""Train a triphone GMM-HMM on delta features (Kaldi's steps/train_deltas.sh): decision
tree from earlier alignments, converted alignments, EM with realignment and mix-up.

e.g.: python -m kdhybrid.bin.train_deltas --nj 2 1000 8000 data/train data/lang exp/mono exp/tri1
"""
import sys

from kdhybrid.bin._common import setup_logging, triphone_parser, triphone_summary
from kdhybrid.gmm.train import DeltasConfig, configure_em, train_deltas


def main() -> int:
    p = triphone_parser(__doc__, num_iters=25)
    a = p.parse_args()
    setup_logging(a.exp_dir)
    cfg = DeltasConfig(num_leaves=a.num_leaves, tot_gauss=a.tot_gauss, min_count=a.min_count)
    configure_em(cfg.em, a.num_iters, a.seed, a.beam, a.retry_beam)
    s = train_deltas(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, a.nj, cfg)
    print(triphone_summary("train_deltas", a.exp_dir, s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
