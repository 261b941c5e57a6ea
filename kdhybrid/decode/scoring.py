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
    # jiwer needs a non-empty hypothesis: an empty one is all deletions, counted here
    scored = [i for i in nonempty if h[i].strip()]
    empties = [i for i in nonempty if not h[i].strip()]
    if scored:
        out = jiwer.process_words([r[i] for i in scored], [h[i] for i in scored])
        ins, dels, subs = out.insertions, out.deletions, out.substitutions
    else:
        ins = dels = subs = 0
    dels += sum(len(r[i].split()) for i in empties)
    ins += sum(len(h[i].split()) for i, x in enumerate(r) if not x.strip())  # words where none were said
    words = sum(len(r[i].split()) for i in nonempty)
    errs = subs + dels + ins
    sent_err = sum(1 for k in keys if refs[k].split() != hyps.get(k, "").split())
    return {
        "wer": round(100.0 * errs / max(words, 1), 2),
        "errors": int(errs),
        "words": int(words),
        "ins": int(ins),
        "del": int(dels),
        "sub": int(subs),
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


def kaldi_wer_file(c: Dict[str, float]) -> str:
    """The contents of a Kaldi ``wer_<LMWT>_<penalty>`` file (compute-wer --mode=present)."""
    return (kaldi_wer_line(c) + "\n"
            + f"%SER {100.0 * c['sentence_errors'] / max(c['sentences'], 1):.2f} [ {c['sentence_errors']} / {c['sentences']} ]\n"
            + f"Scored {c['sentences']} sentences, 0 not present in hyp.\n")


def score_sweep(data_dir, graph_dir, decode_dir, lmwts=range(7, 18), penalties=(0.0, 0.5, 1.0),
                extra: Dict[str, object] = None) -> Dict[str, object]:
    """Kaldi's score.sh on a decode dir's lattices or n-best lists
    (:class:`kdhybrid.decode.lattice.DecodeResults`): for every LM weight and word insertion
    penalty, the best paths (``scoring/<LMWT>.<penalty>.tra``, word ids, and ``.txt``, words) and their WER against
    ``<data_dir>/text`` (``wer_<LMWT>_<penalty>``); then ``best_wer`` (Kaldi's line naming the
    best file), ``hyp.txt`` (the best setting's words) and ``wer.json`` (best setting, its
    counts, the whole grid and ``extra``)."""
    import json
    from pathlib import Path

    from kdhybrid.decode.graph import read_words_table
    from kdhybrid.decode.lattice import DecodeResults
    from kdhybrid.io.tables import atomic_write_text, read_text_table

    d = Path(decode_dir)
    words = read_words_table(graph_dir)
    refs = dict(read_text_table(Path(data_dir) / "text", min_fields=1))
    res = DecodeResults(d)
    missing = sorted(set(refs) - set(res.utts))
    (d / "scoring").mkdir(exist_ok=True)
    grid, best = {}, None
    for lmwt in lmwts:
        for wip in penalties:
            hyp_ids = res.best_words(lmwt, wip)
            tra = "".join(f"{u} {' '.join(map(str, w))}\n".replace(" \n", "\n") for u, w in sorted(hyp_ids.items()))
            atomic_write_text(d / "scoring" / f"{lmwt}.{wip}.tra", tra)
            hyps = {u: " ".join(words.get(i, "<UNK>") for i in w) for u, w in hyp_ids.items()}
            atomic_write_text(d / "scoring" / f"{lmwt}.{wip}.txt", "".join(f"{u} {h}\n".replace(" \n", "\n") for u, h in sorted(hyps.items())))
            c = wer_counts(refs, hyps)
            name = f"wer_{lmwt}_{wip}"
            atomic_write_text(d / name, kaldi_wer_file(c))
            grid[name] = c["wer"]
            if best is None or c["errors"] < best[0]["errors"]:
                best = (c, lmwt, wip, hyps)
    c, lmwt, wip, hyps = best
    out: Dict[str, object] = dict(c, lmwt=lmwt, penalty=wip, acwt=res.acwt, missing_utts=len(missing), grid=grid)
    out.update(extra or {})
    atomic_write_text(d / "hyp.txt", "".join(f"{u} {h}\n".replace(" \n", "\n") for u, h in sorted(hyps.items())))
    atomic_write_text(d / "wer.json", json.dumps(out, indent=1) + "\n")
    atomic_write_text(d / "best_wer", kaldi_wer_line(c) + f" {d}/wer_{lmwt}_{wip}\n")
    return out


def read_kaldi_wer_file(path) -> Dict[str, float]:
    """The counts of a ``wer_<LMWT>_<penalty>`` file (:func:`kaldi_wer_file`, or Kaldi's
    compute-wer output): wer, errors, words, ins, del, sub, and sentences/sentence_errors
    when the ``%SER`` line is there."""
    import re
    from pathlib import Path

    text = Path(path).read_text()
    m = re.search(r"%WER\s+([\d.]+)\s+\[\s*(\d+)\s*/\s*(\d+),\s*(\d+)\s+ins,\s*(\d+)\s+del,\s*(\d+)\s+sub\s*\]", text)
    if m is None:
        raise ValueError(f"{path}: no '%WER x [ errors / words, i ins, d del, s sub ]' line")
    c: Dict[str, float] = {"wer": float(m.group(1))}
    c.update(zip(("errors", "words", "ins", "del", "sub"), map(int, m.groups()[1:])))
    m = re.search(r"%SER\s+[\d.]+\s+\[\s*(\d+)\s*/\s*(\d+)\s*\]", text)
    if m is not None:
        c["sentence_errors"], c["sentences"] = int(m.group(1)), int(m.group(2))
    return c


def dev_tuned(decode_dir, dev_decode_dir):
    """Score a test set's decode dir at the LM weight and insertion penalty that were best on
    dev (tune on dev, report test as it comes), instead of test's own best (Kaldi's
    ``best_wer``). Returns ``(counts, lmwt, penalty, hyps file)`` from the test dir's
    ``wer_<lmwt>_<penalty>`` and ``scoring/<lmwt>.<penalty>.txt``, or None when the dev dir
    records no setting or the test dir was not scored at it (another LM weight range, an
    older scoring without the words file)."""
    import json
    from pathlib import Path

    d, dv = Path(decode_dir), Path(dev_decode_dir)
    try:
        w = json.loads((dv / "wer.json").read_text())
    except (OSError, ValueError):
        return None
    if "lmwt" not in w or "penalty" not in w:
        return None
    lmwt, wip = w["lmwt"], w["penalty"]
    f, hyps = d / f"wer_{lmwt}_{wip}", d / "scoring" / f"{lmwt}.{wip}.txt"
    if not (f.is_file() and hyps.is_file()):
        return None
    return read_kaldi_wer_file(f), lmwt, wip, hyps


def utterance_errors(refs: Dict[str, str], hyps: Dict[str, str]) -> Dict[str, int]:
    """Word errors (ins + del + sub, by kaldialign's edit distance) of each utterance of ``refs``."""
    import kaldialign

    return {u: int(kaldialign.edit_distance(r.split(), hyps.get(u, "").split())["total"]) for u, r in refs.items()}


def oracle_table(refs: Dict[str, str], systems: Dict[str, Dict[str, str]], max_size: int = 3) -> list:
    """The oracle of Chebotar & Waters: for every combination of 2..max_size systems, the WER
    obtained by taking, for each utterance, the hypothesis of the system with fewest errors.

    :param systems: name -> (utt -> hypothesis words).
    :return: rows {members, oracle_wer, best_single_wer, gain}, best oracle first."""
    from itertools import combinations

    words = sum(len(r.split()) for r in refs.values())
    errs = {n: utterance_errors(refs, h) for n, h in systems.items()}
    single = {n: 100.0 * sum(e.values()) / max(words, 1) for n, e in errs.items()}
    rows = []
    for size in range(2, min(max_size, len(systems)) + 1):
        for combo in combinations(sorted(systems), size):
            tot = sum(min(errs[n][u] for n in combo) for u in refs)
            o = 100.0 * tot / max(words, 1)
            b = min(single[n] for n in combo)
            rows.append({"members": list(combo), "oracle_wer": round(o, 2), "best_single_wer": round(b, 2), "gain": round(b - o, 2)})
    rows.sort(key=lambda r: r["oracle_wer"])
    return rows


# Per-utterance attributes a data dir may carry as Kaldi-style tables (``utt2<name>``), by
# which errors are broken down (synth_en writes both; any corpus may add them).
GROUP_TABLES = ("condition", "voice")


def read_utt_groups(data_dir, names=GROUP_TABLES) -> Dict[str, Dict[str, str]]:
    """The ``utt2<name>`` tables of a data dir that exist: name -> (utt -> value)."""
    from pathlib import Path

    from kdhybrid.io.tables import read_text_table

    out = {}
    for n in names:
        p = Path(data_dir) / f"utt2{n}"
        if p.is_file():
            out[n] = dict(read_text_table(p))
    return out


def wer_by_group(refs: Dict[str, str], hyps: Dict[str, str], groups: Dict[str, Dict[str, str]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Errors broken down by per-utterance attributes: for each table of ``groups`` (e.g.
    "condition": utt -> "pink+reverb") and each of its values, :func:`wer_counts` over the
    utterances of ``refs`` with that value (values in sorted order; utterances a table lacks
    fall under "unknown").

    :return: name -> value -> counts (wer, errors, words, ins, del, sub, sentences, ...).
    """
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for name, utt2val in groups.items():
        by: Dict[str, Dict[str, str]] = {}
        for u, r in refs.items():
            by.setdefault(utt2val.get(u, "unknown"), {})[u] = r
        out[name] = {v: wer_counts(by[v], hyps) for v in sorted(by)}
    return out


def format_wer_by_group(table: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """The breakdown as text: one block per attribute, a row per value (WER, words, utterances)."""
    lines = []
    for name, rows in table.items():
        width = max([len(name)] + [len(v) for v in rows])
        lines.append(f"{name:<{width}}  {'WER':>7}  {'words':>6}  {'utts':>5}")
        for v, c in rows.items():
            lines.append(f"{v:<{width}}  {c['wer']:>7.2f}  {c['words']:>6}  {c['sentences']:>5}")
        lines.append("")
    return "\n".join(lines)


def write_wer_by_group(data_dir, decode_dir) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``<decode_dir>/wer_by_group.json``: the errors of the decode's best setting
    (``hyp.txt``) broken down by the data dir's ``utt2<name>`` tables; nothing when it has none.
    """
    import json
    from pathlib import Path

    from kdhybrid.io.tables import atomic_write_text, read_text_table

    groups = read_utt_groups(data_dir)
    if not groups:
        return {}
    d = Path(decode_dir)
    refs = dict(read_text_table(Path(data_dir) / "text", min_fields=1))
    hyps = dict(read_text_table(d / "hyp.txt", min_fields=1))
    table = wer_by_group(refs, hyps, groups)
    atomic_write_text(d / "wer_by_group.json", json.dumps(table, indent=1) + "\n")
    return table
