"""Train a Kneser-Ney word n-gram (ARPA) with kaldingram on LM text, words outside the LM
vocabulary mapped to the lang dir's OOV word; optionally prune it further into smaller LMs
(a graph LM pruned from the rescoring LM, as Kaldi's tgsmall is from tglarge); report every
LM's n-gram counts, perplexity and OOV rate on held-out text.

The vocabulary is --vocab (one word a line; data/local/lm/vocab.txt, chosen without the
evaluation text) when given, else every word of the lang dir's words.txt. Writes <arpa>.json
for each LM and, with --report, one JSON of them all.

e.g.: python -m kdhybrid.bin.train_lm --order 3 --pruned 3e-7 data/local/lm/tgsmall.arpa \\
          --vocab data/local/lm/vocab.txt --dev-text data/dev/text --report data/local/lm/lm.json \\
          data/local/lm/lm_text.txt data/lang data/local/lm/tglarge.arpa
"""
import argparse
import json
import sys
from pathlib import Path

from kdhybrid.io.tables import atomic_write_text, read_text_table
from kdhybrid.lang.ngram import read_words, train_lms


def format_report(report: dict) -> str:
    """One line a LM: its n-gram counts, and perplexity and OOV rate on each held-out text."""
    lines = []
    for name, r in report["lms"].items():
        grams = " ".join(f"{k}={v}" for k, v in r["ngrams"].items())
        ev = "; ".join(f"{k}: ppl {v['ppl']}, OOV {100 * v['oov_rate']:.2f}% of {v['words']} words" for k, v in r["eval"].items())
        lines.append(f"train_lm: {name}: order {r['order']}, prune {r['prune']:g}, {r['seconds']} s; n-grams {grams}" + (f"; {ev}" if ev else ""))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--prune", type=float, default=0.0, help="relative-entropy pruning threshold of <arpa> (0: none)")
    p.add_argument("--pruned", nargs=2, action="append", default=[], metavar=("THRESHOLD", "ARPA"),
                   help="also prune <arpa> at THRESHOLD into ARPA (repeatable)")
    p.add_argument("--vocab", help="the LM's vocabulary, one word a line (default: the lang dir's words)")
    p.add_argument("--dev-text", action="append", default=[], help="Kaldi text file(s) for perplexity")
    p.add_argument("--report", help="write the JSON of every LM here too")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("lm_text")
    p.add_argument("lang_dir")
    p.add_argument("arpa")
    a = p.parse_args()
    lang_words = read_words(Path(a.lang_dir) / "words.txt")
    special = {"<eps>", "#0", "<s>", "</s>", "!SIL"}
    if a.vocab:
        vocab = {w for w in Path(a.vocab).read_text(encoding="utf-8").split()}
        missing = sorted(vocab - lang_words)
        if missing:
            print(f"train_lm: {len(missing)} words of {a.vocab} are not in {a.lang_dir}/words.txt, e.g. {missing[:5]}", file=sys.stderr)
            return 1
    else:
        vocab = lang_words
    vocab = vocab - special
    oov = (Path(a.lang_dir) / "oov.txt").read_text().strip()
    evals = {dev: list(read_text_table(dev, min_fields=1).values()) for dev in a.dev_text}
    report = train_lms(a.lm_text, vocab, oov, a.order, a.arpa, a.prune, [(float(t), out) for t, out in a.pruned], evals, a.num_workers)
    for r in report["lms"].values():
        atomic_write_text(r["arpa"] + ".json", json.dumps(r, indent=1) + "\n")
    if a.report:
        atomic_write_text(a.report, json.dumps(report, indent=1) + "\n")
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
