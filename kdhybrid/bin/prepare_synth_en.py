"""Prepare a built synth_en corpus: lhotse manifests, Kaldi data dirs, dict dir, LM text.

e.g.: python -m kdhybrid.bin.prepare_synth_en --nj 2 corpus/synth_en_default data

Writes data/manifests/, data/{train,dev,test,test_heldout}/ (with utt2condition and utt2voice),
data/local/dict/,
data/local/lm/{lm_text.txt,vocab.txt,lm_text.json} and data/local/corpus_stats.json (the
builder's statistics, per split its condition mix, and the LM text's). A finished part is skipped
on a re-run (each writes a .done marker).
"""
import argparse
import json
import logging
import sys
from pathlib import Path

from kdhybrid.data.prepare import prepare_data_dirs, prepare_dict_and_lm_text, read_speaker_genders, write_utt_groups
from kdhybrid.data.synth_corpus import SPLITS, format_stats
from kdhybrid.data.text import MissingToolError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus_dir")
    p.add_argument("data_root")
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--min-count", type=int, default=1,
                   help="LM-text count for a word to enter the LM vocabulary (1: every word of the 1.3 M-word text)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    corpus, data = Path(args.corpus_dir), Path(args.data_root)
    stats_file = corpus / "meta" / "stats.json"
    if not stats_file.is_file():
        print(f"prepare_synth_en: {stats_file} missing: build the corpus first (local/prepare_synth_en.sh)", file=sys.stderr)
        return 1
    genders = read_speaker_genders(corpus / "SPEAKERS.TXT")
    prepare_data_dirs(corpus, data, {s: s for s in SPLITS}, num_jobs=args.nj, genders=genders)
    write_utt_groups(corpus, data, {s: s for s in SPLITS})  # errors by condition and voice
    lm_stats_file = data / "local" / "lm" / "lm_text.json"
    if not (data / "local" / "dict" / ".done").is_file() or not lm_stats_file.is_file():
        try:
            lm_stats = prepare_dict_and_lm_text(data, [data / "train"], [data / s for s in SPLITS if s != "train"], args.min_count)
        except MissingToolError as e:
            print(f"prepare_synth_en: {e}", file=sys.stderr)
            return 1
        (data / "local" / "dict" / ".done").touch()
    else:
        lm_stats = json.loads(lm_stats_file.read_text())
    stats = json.loads(stats_file.read_text())
    stats["lm_text"] = lm_stats
    (data / "local").mkdir(parents=True, exist_ok=True)
    (data / "local" / "corpus_stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    print(format_stats(stats))
    print(f"LM text: {lm_stats['lm_sentences']} sentences, {lm_stats['lm_words']} words; LM vocabulary: {lm_stats['vocabulary']} words "
          f"(OOV rate {lm_stats.get('eval_oov_rate')}); lexicon: {lm_stats.get('lexicon')} words ({lm_stats['pronunciations']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
