"""Train a Kneser-Ney word n-gram (ARPA) with kaldingram on LM text, OOVs mapped to the
lang dir's OOV word; report perplexity and OOV rate on held-out text.

e.g.: python -m kdhybrid.bin.train_lm --order 3 --prune 1e-7 --dev-text data/dev/text \\
          data/local/lm/lm_text.txt data/lang data/local/lm/3gram_pruned.arpa
"""
import argparse
import json
import sys
import time
from pathlib import Path

from kdhybrid.io.tables import atomic_write_text, read_text_table
from kdhybrid.lang.ngram import map_oov, perplexity, read_words, train_arpa


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--prune", type=float, default=0.0, help="relative-entropy pruning threshold (0: none)")
    p.add_argument("--dev-text", action="append", default=[], help="Kaldi text file(s) for perplexity")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("lm_text")
    p.add_argument("lang_dir")
    p.add_argument("arpa")
    a = p.parse_args()
    t0 = time.time()
    vocab = read_words(Path(a.lang_dir) / "words.txt") - {"<eps>", "#0", "<s>", "</s>", "!SIL"}
    oov = (Path(a.lang_dir) / "oov.txt").read_text().strip()
    mapped = Path(a.arpa).with_suffix(".text.tmp")
    with open(a.lm_text, encoding="utf-8") as f:
        atomic_write_text(mapped, "".join(s + "\n" for s in map_oov((line.strip() for line in f if line.strip()), vocab, oov)))
    counts = train_arpa(mapped, a.order, a.arpa, a.prune, a.num_workers)
    mapped.unlink()
    report = {"order": a.order, "prune": a.prune, "ngrams": counts, "train_seconds": round(time.time() - t0, 1)}
    for dev in a.dev_text:
        sents = list(read_text_table(dev, min_fields=1).values())
        report[f"ppl:{dev}"] = perplexity(a.arpa, sents)
    atomic_write_text(a.arpa + ".json", json.dumps(report, indent=1) + "\n")
    print(f"train_lm: {a.arpa}: {json.dumps(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
