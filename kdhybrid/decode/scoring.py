"""Word error rates, Kaldi's way of reporting them, with jiwer doing the counting."""
from __future__ import annotations

from typing import Dict

import jiwer


def wer_counts(refs: Dict[str, str], hyps: Dict[str, str]) -> Dict[str, float]:
    """Totals over the utterances of ``refs`` (a missing hypothesis counts as empty):
    words, errors, insertions, deletions, substitutions, WER (%) and sentence errors."""
    keys = list(refs)
    r = [refs[k] for k in keys]
    h = [hyps.get(k, "") for k in keys]
    nonempty = [i for i, x in enumerate(r) if x.strip()]
    out = jiwer.process_words([r[i] for i in nonempty], [h[i] if h[i].strip() else "<empty>" for i in nonempty])
    # jiwer needs a non-empty hypothesis; an empty one is scored as one inserted <empty>:
    # take that insertion back.
    empties = sum(1 for i in nonempty if not h[i].strip())
    words = sum(len(r[i].split()) for i in nonempty)
    ins = out.insertions - empties
    errs = out.substitutions + out.deletions + ins
    sent_err = sum(1 for k in keys if refs[k].split() != hyps.get(k, "").split())
    return {
        "wer": round(100.0 * errs / max(words, 1), 2),
        "errors": int(errs),
        "words": int(words),
        "ins": int(ins),
        "del": int(out.deletions),
        "sub": int(out.substitutions),
        "sentences": len(keys),
        "sentence_errors": sent_err,
    }


def kaldi_wer_line(c: Dict[str, float]) -> str:
    """``%WER 12.34 [ 123 / 1000, 10 ins, 20 del, 93 sub ]`` as Kaldi's compute-wer prints."""
    return f"%WER {c['wer']:.2f} [ {c['errors']} / {c['words']}, {c['ins']} ins, {c['del']} del, {c['sub']} sub ]"


def score_decode_dir(data_dir, decode_dir, hyps: Dict[str, str], extra: Dict[str, object] = None) -> Dict[str, float]:
    """Score ``hyps`` against ``<data_dir>/text`` and write the decode dir's scoring files:
    ``hyp.txt`` (Kaldi text), ``wer.json`` (counts + ``extra``), ``best_wer`` (Kaldi's line)."""
    import json
    from pathlib import Path

    from kdhybrid.io.tables import atomic_write_text, read_text_table

    d = Path(decode_dir)
    refs = dict(read_text_table(Path(data_dir) / "text", min_fields=1))
    c = wer_counts(refs, hyps)
    c.update(extra or {})
    atomic_write_text(d / "hyp.txt", "".join(f"{u} {h}\n" for u, h in sorted(hyps.items())))
    atomic_write_text(d / "wer.json", json.dumps(c, indent=1) + "\n")
    atomic_write_text(d / "best_wer", kaldi_wer_line(c) + f" {d}/hyp.txt\n")
    return c
