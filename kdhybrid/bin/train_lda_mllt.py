"""Train an LDA+MLLT triphone GMM-HMM (Kaldi's steps/train_lda_mllt.sh): spliced cepstra,
LDA on the input alignments' pdfs, a new tree, MLLT re-estimated during EM; final.mat.

e.g.: python -m kdhybrid.bin.train_lda_mllt --nj 2 2500 15000 data/train data/lang exp/tri1_ali exp/tri2
"""
import sys

from kdhybrid.bin._common import setup_logging, triphone_parser, triphone_summary
from kdhybrid.gmm.lda_mllt import LdaMlltConfig, train_lda_mllt
from kdhybrid.gmm.train import configure_em


def main() -> int:
    p = triphone_parser(__doc__, num_iters=35)
    p.add_argument("--mllt-iters", default="2,4,6,12", help="iterations that re-estimate MLLT")
    p.add_argument("--splice-context", type=int, default=4, help="frames of cepstra spliced on each side")
    p.add_argument("--dim", type=int, default=40, help="LDA output dimension")
    a = p.parse_args()
    setup_logging(a.exp_dir)
    cfg = LdaMlltConfig(num_leaves=a.num_leaves, tot_gauss=a.tot_gauss, min_count=a.min_count, lda_dim=a.dim,
                        mllt_iters=tuple(int(i) for i in a.mllt_iters.split(",") if i))
    cfg.feats.splice_context = a.splice_context
    configure_em(cfg.em, a.num_iters, a.seed, a.beam, a.retry_beam)
    s = train_lda_mllt(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, a.nj, cfg)
    print(triphone_summary("train_lda_mllt", a.exp_dir, s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
