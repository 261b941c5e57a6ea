"""Prepare a LibriSpeech-layout corpus (the real LibriSpeech, or any corpus in its layout):
lhotse's prepare_librispeech -> Kaldi data dirs, CMUdict + festival-G2P dict dir, LM text.

e.g.: python -m kdhybrid.bin.prepare_librispeech --parts train-clean-100:train,dev-clean:dev,test-clean:test \\
          --lm-text librispeech-lm-norm.txt /data/LibriSpeech data

Each --parts item is <corpus part>:<data dir name>, comma-separated. Without --lm-text the LM text is the
training transcripts. A finished part is skipped on a re-run.
"""
import argparse
import gzip
import json
import logging
import sys
from pathlib import Path

from kdhybrid.data.prepare import prepare_data_dirs, prepare_dict_and_lm_text, read_speaker_genders, read_transcripts
from kdhybrid.data.text import normalize_all


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="train-clean-100:train,dev-clean:dev,test-clean:test,test-other:test_other",
                   help="comma-separated <corpus part>:<data dir name>")
    p.add_argument("--lm-text", help="LM training text, one sentence a line (plain or .gz)")
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("corpus_dir")
    p.add_argument("data_root")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    corpus, data = Path(a.corpus_dir), Path(a.data_root)
    mapping = dict(x.split(":", 1) for x in a.parts.split(","))
    missing = [part for part in mapping if not (corpus / part).is_dir()]
    if missing:
        print(f"prepare_librispeech: {corpus}: no part(s) {missing}", file=sys.stderr)
        return 1
    genders = read_speaker_genders(corpus / "SPEAKERS.TXT") if (corpus / "SPEAKERS.TXT").is_file() else None
    prepare_data_dirs(corpus, data, mapping, num_jobs=a.nj, prefix="librispeech", genders=genders)
    names = list(mapping.values())
    train = [data / n for n in names if n.startswith("train")]
    evals = [data / n for n in names if not n.startswith("train")]
    if a.lm_text:
        opener = gzip.open if a.lm_text.endswith(".gz") else open
        with opener(a.lm_text, "rt", encoding="utf-8") as f:
            sents = normalize_all(line for line in f)
    else:
        sents = read_transcripts(train)
    stats = prepare_dict_and_lm_text(data, train, evals, lm_sentences=sents)
    (data / "local" / "dict" / ".done").touch()
    print(f"prepare_librispeech: {json.dumps(stats)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
