"""Train a unit LM for LM-to-AM distillation (steps/train_unit_lm.sh): the LM text as units
(monophones, senones or subwords), a small LSTM with held-out perplexity, and its Kneser-Ney
n-gram floor; writes <lm-dir>/{unit_lm.json, units.txt, lm.pt, floor.arpa[, sp.model]}.

e.g.: python -m kdhybrid.bin.train_unit_lm --unit monophone data/local/lm/lm_text.txt data/lang exp/tri1_ali exp/unit_lm/monophone
      python -m kdhybrid.bin.train_unit_lm --unit subword --vocab-size 500 --max-seconds 300 ...
"""
import argparse
import json
import sys

import torch

from kdhybrid.bin._common import setup_logging
from kdhybrid.lm.build import UnitLmConfig, train_unit_lm
from kdhybrid.lm.lstm import LstmLmConfig
from kdhybrid.lm.units import UNIT_KINDS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unit", choices=UNIT_KINDS, required=True)
    p.add_argument("--ngram-order", type=int, default=3, help="order of the n-gram floor")
    p.add_argument("--vocab-size", type=int, default=500, help="sentencepiece pieces (subword)")
    p.add_argument("--heldout-every", type=int, default=100, help="every n-th sentence of the LM text is held out")
    p.add_argument("--add-alignments", type=lambda v: v.lower() == "true", default=True,
                   help="senone: add the training alignments' senone sequences to the LM text (true|false)")
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--hidden-dim", type=int, default=256)
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=600.0, help="wall-clock budget of the LSTM's training")
    p.add_argument("--max-train-tokens", type=int, default=0, help="subsample the training sentences to about this many units (0: all)")
    p.add_argument("--batch-tokens", type=int, default=4000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("lm_text")
    p.add_argument("lang_dir")
    p.add_argument("ali_dir")
    p.add_argument("lm_dir")
    a = p.parse_args()
    setup_logging(a.lm_dir, "train_unit_lm.log")
    torch.set_num_threads(a.threads)
    lstm = LstmLmConfig(embed_dim=a.embed_dim, hidden_dim=a.hidden_dim, max_epochs=a.max_epochs, max_seconds=a.max_seconds,
                        max_train_tokens=a.max_train_tokens, batch_tokens=a.batch_tokens, lr=a.lr, seed=a.seed, threads=a.threads)
    cfg = UnitLmConfig(unit=a.unit, ngram_order=a.ngram_order, vocab_size=a.vocab_size, heldout_every=a.heldout_every,
                       add_alignments=a.add_alignments, seed=a.seed, lstm=lstm)
    r = train_unit_lm(a.lm_text, a.lang_dir, a.ali_dir, a.lm_dir, cfg, progress=not a.no_progress)
    keys = ("num_units", "train_tokens", "heldout_ppl", "floor_heldout_ppl", "beats_floor", "tokens_per_second", "epochs", "seconds")
    print(f"train_unit_lm: {a.lm_dir}: {a.unit}: " + json.dumps({k: r[k] for k in keys}))
    if not r["beats_floor"]:
        print(f"train_unit_lm: WARNING: the LSTM's held-out perplexity {r['heldout_ppl']} does not beat the "
              f"{cfg.ngram_order}-gram floor's {r['floor_heldout_ppl']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
