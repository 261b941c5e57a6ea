"""The reproduction table: RESULTS.md from the decode dirs' wer.json files, never by hand.

A system is an exp dir with scored decode dirs ``decode_<lm>_<set>``. Its row gives the WER
of each test set (the rescored LM's when present) at the LM weight and insertion penalty best
on dev (tuned on dev, never on test; a set decoded without a dev counterpart is marked and
scored at its own best), the dev frame accuracy (the kept epoch, best dev CE, of the
training history; for an ensemble, of the fused posteriors on dev), the parameters and the
training time. Systems named ``<name>_seed<N>`` are grouped: mean and spread over seeds.
The significance of the difference between two systems on a test set is a paired bootstrap
over utterances (Bisani & Ney, 2004) on the per-utterance errors of their ``hyp.txt``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from kdhybrid.distill.significance import bootstrap_p, compare, verdict
from kdhybrid.io.stage_times import read_stage_times, stage_times_table

Pathlike = Union[str, Path]


@dataclass
class System:
    name: str
    exp: Path
    kind: str  # gmm | member | ensemble | student
    wer: Dict[str, float] = field(default_factory=dict)  # set -> WER (%)
    decode_dirs: Dict[str, Path] = field(default_factory=dict)
    hyps: Dict[str, Path] = field(default_factory=dict)  # set -> the hypotheses scored (Kaldi text)
    own_best: List[str] = field(default_factory=list)  # sets scored at their own best setting (no dev to tune on)
    lm: str = ""
    dev_acc: Optional[float] = None
    params: Optional[int] = None
    train_seconds: Optional[float] = None
    note: str = ""
    criterion: str = ""  # a network's training criterion: ce, or smbr / mmi / bmmi (sequence training)
    source: str = ""  # the exp dir a sequence-trained network was fine-tuned from
    seq_setting: str = ""  # its fine-tuning's epochs, learning rate and acoustic scale (claims compare like with like)
    lm_heads: Dict[str, float] = field(default_factory=dict)  # LM-to-AM distillation: unit -> head weight
    files: List[Path] = field(default_factory=list)  # the scoring files its WERs were read from (what an archive keeps)


def _decode_dir(exp: Path, test_set: str, lms: Sequence[str], prefix: str = "decode") -> Tuple[Optional[Path], str]:
    for lm in lms:
        d = exp / f"{prefix}_{lm}_{test_set}"
        if (d / "wer.json").is_file():
            return d, lm
    return None, ""


def describe(exp: Pathlike, sets: Sequence[str], lms: Sequence[str] = ("fglarge", "tglarge", "tgsmall"),
             tune_set: str = "dev", prefix: str = "decode") -> Optional[System]:
    """A :class:`System` of an exp dir, or None when it has no scored decode dir
    ``<prefix>_<lm>_<set>`` (the first of ``lms`` there). Every set but ``tune_set`` is scored
    at the LM weight and penalty best on ``tune_set`` with the same LM
    (:func:`kdhybrid.decode.scoring.dev_tuned`) where both were scored so."""
    exp = Path(exp)
    s = System(exp.name, exp, "member")
    _score_sets(s, sets, lms, tune_set, prefix)
    if not s.wer:
        return None
    describe_training(s)
    return s


def _score_sets(s: System, sets: Sequence[str], lms: Sequence[str], tune_set: str, prefix: str) -> None:
    """Fill ``s``'s WER, decode dirs and hypotheses of each set it was decoded on (see :func:`describe`)."""
    from kdhybrid.decode.scoring import dev_tuned

    exp = s.exp
    for x in sets:
        d, lm = _decode_dir(exp, x, lms, prefix)
        if d is not None:
            s.wer[x] = json.loads((d / "wer.json").read_text())["wer"]
            s.decode_dirs[x] = d
            s.hyps[x] = d / "hyp.txt"
            s.lm = s.lm or lm
            tuned = dev_tuned(d, exp / f"{prefix}_{lm}_{tune_set}") if x != tune_set else None
            if tuned is not None:
                s.wer[x], s.hyps[x] = tuned[0]["wer"], tuned[3]
                s.files.append(d / f"wer_{tuned[1]}_{tuned[2]}")
            elif x != tune_set:
                s.own_best.append(x)
            s.files += [d / "wer.json", s.hyps[x]] + ([exp / f"{prefix}_{lm}_{tune_set}" / "wer.json"] if tuned is not None else [])


def describe_training(s: System) -> None:
    """Fill ``s``'s kind, dev frame accuracy, parameters, training time and note from its exp
    dir (ensemble.json, a network's final.pt or a GMM's final.pkl)."""
    exp = s.exp
    if (exp / _SUMMARY).is_file():  # an archived system (archive_results): what was described when it was archived
        for k, v in json.loads((exp / _SUMMARY).read_text()).items():
            setattr(s, k, v)
    elif (exp / "ensemble.json").is_file():
        cfg = json.loads((exp / "ensemble.json").read_text())
        s.kind = "ensemble"
        s.dev_acc = cfg.get("selection", {}).get("dev_acc")
        members = [describe_model(d) for d in (_beside(Path(m), exp) for m in cfg["members"]) if (d / "final.pt").is_file()]
        s.params = sum(m[1] or 0 for m in members)
        s.train_seconds = sum(m[2] or 0 for m in members)
        s.note = f"{cfg['fusion']} fusion of {', '.join(Path(m).name for m in cfg['members'])}, weights {cfg['weights']}"
    elif (exp / "final.pt").is_file():
        s.dev_acc, s.params, s.train_seconds, ck = describe_model(exp)
        tc = ck.get("train_config") or {}
        kd = tc.get("distill") or {}
        mc = ck["model_config"]
        arch = f"{mc['arch']} {mc.get('hidden')}x{mc.get('num_layers')}"
        s.criterion = ck.get("criterion") or "ce"
        if s.criterion != "ce":  # sequence training: init_from is the source's final.pt
            src_dir = _beside(Path(ck["init_from"]).parent, exp)
            s.source = src_dir.name
            src = System(s.source, src_dir, "member")
            if (src.exp / "final.pt").is_file():
                describe_training(src)
            s.kind = src.kind
            lr = f", lr {tc['lr']:g}" if tc.get("lr") is not None else ""
            s.seq_setting = f"{tc.get('epochs')} epochs{lr}, acwt {(tc.get('sequence') or {}).get('acwt')}"
            s.note = f"{s.criterion} ({s.seq_setting}) from {s.source}: {src.note}"
            return
        init = f", initialised from {Path(ck['init_from']).parent.name}" if ck.get("init_from") else ""
        if kd.get("objective", "none") != "none":
            s.kind = "student"
            post = Path(kd["posts"]).parent / "post.json"
            info = json.loads(post.read_text()) if post.is_file() else {}
            k = "all" if info.get("topk") == 0 else info.get("K", "?")
            s.note = f"{arch}, {kd['objective']}, k={k}, hard weight {kd.get('hard_weight')}, soft weight {kd.get('soft_weight')}, head {kd.get('head')}"
            if kd["objective"] == "interpolation":
                s.note = f"{arch}, label interpolation, k={k}, alpha {kd.get('alpha')}"
            s.note += init
        else:
            s.note = f"{arch}, hard labels{init}"
        s.lm_heads = {u: float(w) for u, w in ((tc.get("lm_heads") or {}).get("weights") or {}).items() if w}
        if s.lm_heads:
            s.note += ", LM heads " + ", ".join(f"{u} {w:g}" for u, w in sorted(s.lm_heads.items()))
    elif (exp / "final.pkl").is_file():
        s.kind = "gmm"
        s.note = "GMM-HMM"


STAGE_TIMES = "exp/stage_times.jsonl"  # the recipe's stage wall times (kdhybrid.io.stage_times), relative to the recipe dir
_SUMMARY = "results_summary.json"  # an archived system's description (archive_results)
_DESCRIBED = ("kind", "dev_acc", "params", "train_seconds", "note", "criterion", "source", "seq_setting", "lm_heads")


def _beside(path: Path, exp: Path) -> Path:
    """An exp dir named in ``exp``'s files (an ensemble's members, a fine-tuned network's
    source): as written when it exists, else the dir of that name beside ``exp`` (the recipe
    writes paths relative to the recipe dir, which need not be the working dir)."""
    if not path.is_absolute():  # relative to the recipe dir (exp's parent's parent), not the working dir
        path = exp.parent.parent / path
    return path if path.is_dir() else exp.parent / path.name


def compare_table(exps: Sequence[Pathlike], sets: Sequence[str], lms: Sequence[str] = ("tgsmall", "tglarge"),
                  prefix: str = "decode", tune_set: str = "dev") -> str:
    """Exp dirs side by side, one column each (Kaldi's ``compare_wer.sh``): the WER of every
    set and LM (other sets than ``tune_set`` at its best LM weight and penalty; † where a set
    was scored at its own best), the dev frame accuracy, the parameters, the training time."""
    cols = []
    for e in exps:
        s = System(Path(e).name, Path(e), "member")
        describe_training(s)  # once: it loads the checkpoints
        per_lm = {}
        for lm in lms:
            per_lm[lm] = System(s.name, s.exp, s.kind)
            _score_sets(per_lm[lm], sets, (lm,), tune_set, prefix)
        cols.append((s, per_lm))
    rows = [["# system"] + [s.name for s, _ in cols]]
    for lm in lms:
        for x in sets:
            cells = []
            for _, per_lm in cols:
                d = per_lm[lm]
                cells.append("-" if x not in d.wer else f"{d.wer[x]:.2f}" + (" †" if x in d.own_best else ""))
            rows.append([f"# WER {x} ({lm})"] + cells)
    rows.append(["# dev frame acc (%)"] + [f"{100 * s.dev_acc:.1f}" if s.dev_acc is not None else "-" for s, _ in cols])
    rows.append(["# params (M)"] + [f"{s.params / 1e6:.2f}" if s.params else "-" for s, _ in cols])
    rows.append(["# train time (s)"] + [f"{s.train_seconds:.0f}" if s.train_seconds else "-" for s, _ in cols])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    if any("†" in c for r in rows for c in r):
        lines.append(f"# † scored at that set's own best LM weight (no {tune_set} decode, or not scored at {tune_set}'s setting)")
    return "\n".join(lines) + "\n"


def describe_model(exp: Path):
    """(dev frame accuracy of the epoch final.pt holds (the best dev CE), parameters, training
    seconds, checkpoint) of a final.pt; the best accuracy of the history when the epoch is
    not recorded."""
    import torch

    ck = torch.load(exp / "final.pt", map_location="cpu")
    hist = ck.get("history") or []
    kept = [h["dev_acc"] for h in hist if "epoch" in ck and h.get("epoch") == ck["epoch"] and "dev_acc" in h]
    acc = kept[0] if kept else max((h["dev_acc"] for h in hist if "dev_acc" in h), default=None)  # (sequence training: none)
    if ck.get("num_params") is None:
        ck["num_params"] = sum(v.numel() for v in ck["state_dict"].values() if v.dtype.is_floating_point)
    return acc, ck.get("num_params"), ck.get("train_seconds"), ck


def paired_bootstrap(err_a: np.ndarray, err_b: np.ndarray, words: np.ndarray, n: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value that systems a and b have the same WER: utterances resampled with
    replacement ``n`` times (:func:`kdhybrid.distill.significance.bootstrap_p` of the
    per-utterance differences in errors)."""
    return bootstrap_p((np.asarray(err_a) - np.asarray(err_b)).astype(np.float64), n, seed)


def utterance_error_vector(hyps_file: Path, data_dir: Path) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """(errors (U,) int, reference words (U,) int, utterance ids) of a hypotheses file (Kaldi
    text) against ``<data_dir>/text``, utterances sorted."""
    from kdhybrid.decode.scoring import utterance_errors
    from kdhybrid.io.tables import read_text_table

    refs = dict(read_text_table(data_dir / "text", min_fields=1))
    hyps = dict(read_text_table(hyps_file, min_fields=1))
    e = utterance_errors(refs, hyps)
    keys = sorted(refs)
    return np.array([e[k] for k in keys]), np.array([len(refs[k].split()) for k in keys]), keys


def group_seeds(systems: List[System]) -> Dict[str, List[System]]:
    groups: Dict[str, List[System]] = {}
    for s in systems:
        groups.setdefault(re.sub(r"_seed\d+$", "", s.name), []).append(s)
    return groups


def _fmt(vals: Sequence[Optional[float]], digits: int = 2) -> str:
    v = [x for x in vals if x is not None]
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f} (n={len(v)})"


def write_results(recipe_dir: Pathlike, out: Pathlike, sets: Sequence[str], baseline: str, ensemble: str, student: str,
                  post_dir: Optional[str] = None, order: Sequence[str] = (), extra_lines: Sequence[str] = (),
                  figures: Sequence[Tuple[str, str]] = (), archive: Optional[Pathlike] = None) -> str:
    """Write RESULTS.md (returns its text) and its pictures beside it. ``figures``: more (PNG
    path relative to ``out``'s dir, caption) pairs to embed; a missing PNG is an error.
    ``archive``: a dir to keep what the table was written from (:func:`archive_results`)."""
    from kdhybrid.io.tables import atomic_write_text

    root = Path(recipe_dir)
    figures_in = list(figures)
    systems = [s for s in (describe(e, sets) for e in sorted((root / "exp").iterdir()) if e.is_dir()) if s is not None]
    groups = group_seeds(systems)
    rank = {n: i for i, n in enumerate(order)}
    names = sorted(groups, key=lambda n: (rank.get(n, len(rank)), {"gmm": 0, "member": 1, "ensemble": 2, "student": 3}[groups[n][0].kind],
                                          _natural(n)))
    lines = ["# synth_en results", "",
             "Written by `python -m kdhybrid.bin.results` (the recipe's last stage) from the decode dirs' `wer.json`; do not edit.",
             "WER (%) after rescoring with the large LM (`tglarge`, or the 4-gram `fglarge`) where the system was rescored, else the graph LM (`tgsmall`);",
             "test sets at the LM weight / insertion penalty best on dev with the same LM (tuned on dev, never on test; "
             "dev itself at its best, Kaldi's `best_wer`; † marks a WER at that set's own best, where no dev decode was there to tune on). "
             "Dev frame accuracy: the kept epoch (best dev cross-entropy), on the frames the outputs land on (an ensemble's: its fused posteriors, the same frames). "
             "Train time: the network's own training (a sequence-trained one's fine-tuning alone, its alignment and lattices not counted; "
             "an ensemble's: its members' sum); the stages' wall times are below.",
             "", "| system | kind | " + " | ".join(f"{x} WER" for x in sets) + " | dev frame acc | params | train time (s) | LM | what |",
             "|---|---|" + "---|" * len(sets) + "---|---|---|---|---|"]
    for n in names:
        g = groups[n]
        s0 = g[0]
        cells = [_fmt([s.wer.get(x) for s in g]) + (" †" if any(x in s.own_best for s in g) else "") for x in sets]
        acc = _fmt([100 * s.dev_acc if s.dev_acc is not None else None for s in g], 1)
        params = f"{s0.params / 1e6:.2f} M" if s0.params else "-"
        secs = _fmt([s.train_seconds for s in g], 0)
        lines.append(f"| {n} | {s0.kind} | " + " | ".join(cells) + f" | {acc} | {params} | {secs} | {s0.lm} | {s0.note} |")
    lines.append("")
    by = {n: groups[n] for n in names}
    claims = claims_text(root, by, sets, baseline, ensemble, student, post_dir)
    gmms = [n for n in names if by[n][0].kind == "gmm" and _mean_wer(by[n], "dev") is not None]
    best_gmm = [min(gmms, key=lambda n: _mean_wer(by[n], "dev"))] if gmms else []  # the GMM the networks are measured against
    lines += claims + [""] + condition_table(root, by, sets, best_gmm + [baseline, ensemble, student]) + list(extra_lines)
    times = stage_times_table(read_stage_times(root / STAGE_TIMES))
    if times:
        lines += ["", f"Wall time of each stage, its last run (`{STAGE_TIMES}`; a stage is recorded when it has finished):", ""] + times
    figures = list(figures) + result_figures(root, Path(out).parent, by, sets, baseline, post_dir)
    for png, caption in figures:
        if not (Path(out).parent / png).is_file():
            raise FileNotFoundError(f"write_results: figure {Path(out).parent / png} does not exist")
        lines += ["", f"{caption}:", "", f"![{caption}]({png})"]
    text = "\n".join(lines) + "\n"
    if archive is not None:  # first: an archive that cannot be made leaves RESULTS.md as it was
        archive_results(root, archive, systems, post_dir, dict(sets=list(sets), baseline=baseline, ensemble=ensemble, student=student,
                                                               post_dir=post_dir, order=list(order), extra_lines=list(extra_lines),
                                                               figures=[list(f) for f in figures_in]), Path(out).parent)
    atomic_write_text(out, text)
    return text


def _post_json(root: Path, post_dir: Optional[str]) -> Optional[Path]:
    """The teacher dump's post.json (its mass curve) of ``post_dir`` (relative to the recipe
    dir ``root`` unless absolute), or None."""
    if not post_dir:
        return None
    p = Path(post_dir) / "post.json"
    p = p if p.is_absolute() else root / p
    return p if p.is_file() else None


def archive_results(root: Path, dest: Pathlike, systems: Sequence[System], post_dir: Optional[str], args: dict,
                    figure_dir: Path) -> None:
    """Keep what RESULTS.md was written from, small enough to commit beside it, laid out like a
    recipe dir so that :func:`regenerate_results` writes the same RESULTS.md from it: every
    system's scoring files that were read (``System.files``: wer.json, the dev-tuned
    ``wer_<lmwt>_<penalty>`` and hypotheses) and its description (``results_summary.json``
    instead of checkpoints), ensembles' ``ensemble.json``, the test sets' ``text`` and
    ``utt2condition``, the dump's post.json, the figures passed in, and the arguments
    (``results_args.json``). Made in ``<dest>.tmp`` and renamed over ``dest``."""
    import shutil

    from kdhybrid.io.tables import atomic_write_text

    dest = Path(dest)
    if dest.exists() and not (dest / "results_args.json").is_file():
        raise ValueError(f"archive_results: {dest} exists and is not a results archive (no results_args.json): not replaced")
    inside = lambda p: not Path(p).is_absolute() and ".." not in Path(p).parts  # noqa: E731
    for what, p in [("--post-dir", post_dir)] * bool(post_dir) + [("figure", png) for png, _ in args["figures"]]:
        if not inside(p):
            raise ValueError(f"archive_results: {what} {p}: not a relative path inside the recipe dir; an archive cannot keep it")
    tmp = dest.parent / (dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def keep(f: Path, rel: Optional[Path] = None) -> None:  # copy f to the same place under the archive
        t = tmp / (rel or Path(os.path.abspath(f)).relative_to(os.path.abspath(root)))  # (a linked exp dir keeps its name)
        t.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, t)

    for s in systems:
        for f in dict.fromkeys(s.files):
            if Path(f).is_file():  # (a hyp.txt that was never written is missing from the table's source too)
                keep(f)
        if (s.exp / "ensemble.json").is_file():
            keep(s.exp / "ensemble.json")
        e = tmp / Path(os.path.abspath(s.exp)).relative_to(os.path.abspath(root))
        e.mkdir(parents=True, exist_ok=True)
        atomic_write_text(e / _SUMMARY, json.dumps({k: getattr(s, k) for k in _DESCRIBED}, indent=1) + "\n")
    for x in args["sets"]:
        for f in ("text", "utt2condition"):
            if (root / "data" / x / f).is_file():
                keep(root / "data" / x / f)
    post = _post_json(root, post_dir)
    if post is not None:
        keep(post, Path(post_dir) / "post.json")
    if (root / STAGE_TIMES).is_file():
        keep(root / STAGE_TIMES)
    for png, _ in args["figures"]:
        keep(figure_dir / png, Path("figures") / png)
    atomic_write_text(tmp / "results_args.json", json.dumps(args, indent=1) + "\n")
    old = dest.parent / (dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def regenerate_results(archive: Pathlike, out: Pathlike) -> str:
    """RESULTS.md (and its pictures, beside ``out``) written again from an archive of
    :func:`archive_results`; returns its text."""
    import shutil

    archive = Path(archive)
    a = json.loads((archive / "results_args.json").read_text())
    for png, _ in a["figures"]:
        (Path(out).parent / png).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archive / "figures" / png, Path(out).parent / png)
    return write_results(archive, out, a["sets"], a["baseline"], a["ensemble"], a["student"], a["post_dir"], a["order"],
                         a["extra_lines"], [tuple(f) for f in a["figures"]])


def condition_table(root: Path, by: Dict[str, List[System]], sets, names: Sequence[str]) -> List[str]:
    """Markdown lines: the test WER of the systems ``names`` (their first seed; the hypotheses
    scored in the table) broken down by each utterance's condition (``data/<test>/utt2condition``,
    :func:`kdhybrid.decode.scoring.wer_by_group`); nothing without that table."""
    from kdhybrid.decode.scoring import read_utt_groups, wer_by_group
    from kdhybrid.io.tables import read_text_table

    test = "test" if "test" in sets else sets[-1]
    groups = read_utt_groups(root / "data" / test, ("condition",))
    cols = [n for n in dict.fromkeys(names) if n in by and by[n][0].hyps.get(test)]
    if not groups or not cols:
        return []
    refs = dict(read_text_table(root / "data" / test / "text", min_fields=1))
    tables = {n: wer_by_group(refs, dict(read_text_table(by[n][0].hyps[test], min_fields=1)), groups)["condition"] for n in cols}
    conds = list(tables[cols[0]])
    out = [f"## WER by condition ({test})", "",
           f"The {test} WER (%) of each utterance condition (`data/{test}/utt2condition`), the first seed of each system.", "",
           "| condition | utterances | words | " + " | ".join(f"`{n}`" for n in cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for c in conds:
        t0 = tables[cols[0]][c]
        out.append(f"| {c} | {t0['sentences']} | {t0['words']} | " + " | ".join(f"{tables[n][c]['wer']:.2f}" for n in cols) + " |")
    return out + [""]


def result_figures(root: Path, out_dir: Path, by: Dict[str, List[System]], sets, baseline: str, post_dir: Optional[str]) -> List[Tuple[str, str]]:
    """The pictures of RESULTS.md, written into ``out_dir``: (PNG name, caption) pairs. WER per
    system with seed error bars (the test set); dev WER against k with the teacher's mass curve
    (when the k grid and the dump's post.json are there); the LM-head ablation (when there)."""
    from kdhybrid.distill.figures import plot_lm_ablation, plot_wer_by_system, plot_wer_vs_k

    test = "test" if "test" in sets else sets[-1]
    dev = "dev" if "dev" in sets else sets[0]
    wers = lambda g, x: [s.wer[x] for s in g if x in s.wer]  # noqa: E731
    out: List[Tuple[str, str]] = []
    rows = [(n, wers(g, test)) for n, g in by.items() if wers(g, test) and not _in_sweep(n)]
    if rows:
        plot_wer_by_system(rows, test, out_dir / "wer_by_system.png")
        out.append(("wer_by_system.png", f"{test} WER of every system (mean over seeds, error bars: sd, n seeds above each bar)"))
    grid: Dict[str, Dict[str, List[float]]] = {}
    for n, g in by.items():
        m = re.fullmatch(r"student_k(\d+|all)(_nohard)?", n)
        if m and g[0].kind == "student" and wers(g, dev):
            grid.setdefault("soft labels only" if m.group(2) else "with the hard labels", {})[m.group(1)] = wers(g, dev)
    post = _post_json(root, post_dir)
    if post is not None and sum(len(v) for v in grid.values()) >= 2:
        plot_wer_vs_k(grid, json.loads(post.read_text())["mass_curve"], dev, out_dir / "wer_vs_k.png")
        out.append(("wer_vs_k.png", f"{dev} WER of the top-k students against k, and the teacher's probability mass kept by its top k "
                                    "(Yang et al.'s Figure 1)"))
    heads = [(n, g) for n, g in by.items() if g[0].lm_heads and g[0].kind == "member" and wers(g, test) and not _in_sweep(n)]
    if heads and baseline in by and wers(by[baseline], test):
        acc = lambda g: (100 * float(np.mean([s.dev_acc for s in g if s.dev_acc is not None]))  # noqa: E731
                         if any(s.dev_acc is not None for s in g) else None)
        plot_lm_ablation([(n, acc(g), wers(g, test)) for n, g in [(baseline, by[baseline])] + heads], baseline, test,
                         out_dir / "lm_ablation.png")
        out.append(("lm_ablation.png", f"The LM-head ablation (Lee & Chang's Table 1): {test} WER and dev frame accuracy"))
    return out


def _natural(name: str):
    """Sort key with numbers compared as numbers (student_k5 before student_k10)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def _mean_wer(g: List[System], x: str) -> Optional[float]:
    v = [s.wer[x] for s in g if x in s.wer]
    return float(np.mean(v)) if v else None


def _k_trend(grid: Dict[Tuple[str, bool], List[System]], korder: List[str], curve: Dict[str, float], dev: str,
             student: List[System]) -> str:
    """Why one k beats another, from the k grid's own numbers: how each row (with and without
    the hard labels) moves as k and the mass kept by the top k grow, what the hard labels are
    worth at the smallest and largest k, and the hard-label row's spread against the default
    student's seed spread."""
    wer = {kn: _mean_wer(g, dev) for kn, g in grid.items()}
    wer = {kn: v for kn, v in wer.items() if v is not None}
    parts = []
    for nohard, label in ((True, "without the hard labels"), (False, "with them")):
        ks = [k for k in korder if k.isdigit() and k in curve and (k, nohard) in wer]
        if len(ks) < 2:
            continue
        w = [wer[(k, nohard)] for k in ks]
        trend = "falls at every step" if all(b < a for a, b in zip(w, w[1:])) else "does not fall at every step"
        parts.append(f"{label} the {dev} WER {trend} as k grows from {ks[0]} to {ks[-1]} ({w[0]:.2f} to {w[-1]:.2f}) "
                     f"and the mass kept from {curve[ks[0]]:.3f} to {curve[ks[-1]]:.3f}")
    both = [k for k in korder if (k, True) in wer and (k, False) in wer]
    if both:
        parts.append("the hard labels are worth " + " and ".join(f"{wer[(k, True)] - wer[(k, False)]:.2f} points at k={k}"
                                                                 for k in dict.fromkeys([both[0], both[-1]])))
    hard_ks = [k for k in korder if (k, False) in wer][1:]  # all but the smallest k
    hard = [wer[(k, False)] for k in hard_ks]
    seeds = [x.wer[dev] for x in student if dev in x.wer]
    if len(hard) >= 2 and len(seeds) >= 2:
        sd = float(np.std(seeds, ddof=1))
        spread = max(hard) - min(hard)
        parts.append(f"from k={hard_ks[0]} up the hard-label students lie within {spread:.2f} points of each other, against a seed standard "
                     f"deviation of {sd:.2f} for `{student[0].name}`: " + ("the choice of k there is within two seed deviations"
                                                                           if spread <= 2 * sd else "more than two seed deviations"))
    text = "; ".join(parts)
    return (text[0].upper() + text[1:] + ".") if parts else ""


def _p_value(a: System, b: System, x: str, root: Path) -> Optional[float]:
    """Paired bootstrap p-value of ``a`` against ``b`` on set ``x`` (the hypotheses scored)."""
    if not (a.hyps.get(x) and b.hyps.get(x)):
        return None
    ea, words, _ = utterance_error_vector(a.hyps[x], root / "data" / x)
    eb, _, _ = utterance_error_vector(b.hyps[x], root / "data" / x)
    return paired_bootstrap(ea, eb, words)


def claims_text(root: Path, by: Dict[str, List[System]], sets, baseline: str, ensemble: str, student: str, post_dir: Optional[str]) -> List[str]:
    """The claims section: the claims table (:func:`claims_table`), then one numbered paragraph
    a claim whose systems are in ``by``."""
    out = _claims(root, by, sets, baseline, ensemble, student, post_dir)
    return (["## The papers' claims on this data", ""] + claims_table(root, by, sets, baseline, ensemble, student)
            + [f"{i}. {t}" for i, t in enumerate(out, 1)])


@dataclass
class ClaimRow:
    """One claim of the papers as a comparison of two systems of the table: ``new`` (its seeds)
    is claimed better than ``ref`` (its seeds)."""
    claim: str
    paper: str  # what the paper reports, in words and its figures where the issues give them
    ref: List[System]
    new: List[System]
    paper_relative: Optional[float] = None  # the paper's relative WER gain (%), where it gives one figure
    no_worse: bool = False  # the claim is that ``new`` is no worse than ``ref`` (not that it is better)
    kind: str = ""  # which claim: student_baseline, student_ensemble, ensemble_member, which_k, init, seq_source,
                    # seq_distilled, mixed_ensemble, lm_heads, student_lm (the paragraphs under the table pick theirs by it)


def claim_rows(by: Dict[str, List[System]], baseline: str, ensemble: str, student: str, test: str) -> List[ClaimRow]:
    """The claims of the three papers whose systems are in ``by`` (seed groups by name), in the
    order of the papers: Yang et al., Chebotar & Waters, Lee & Chang."""
    rows: List[ClaimRow] = []
    has = lambda n: n in by and _mean_wer(by[n], test) is not None  # noqa: E731
    one = _by_name(by)
    if has(baseline) and has(student):
        rows.append(ClaimRow("student vs baseline", "Yang et al.: the student beats a same-size hard-label model", by[baseline], by[student],
                             kind="student_baseline"))
    if has(ensemble) and has(student):
        rows.append(ClaimRow("student vs ensemble", "Yang et al.: the student beats even the teacher ensemble", by[ensemble], by[student],
                             kind="student_ensemble"))
    if has(ensemble) and (by[ensemble][0].exp / "ensemble.json").is_file():
        members = [one[Path(m).name] for m in json.loads((by[ensemble][0].exp / "ensemble.json").read_text())["members"]
                   if Path(m).name in one and "dev" in one[Path(m).name].wer and test in one[Path(m).name].wer]
        if members:
            best = min(members, key=lambda m: m.wer["dev"])
            rows.append(ClaimRow(f"ensemble vs best member (`{best.name}`)", "Chebotar & Waters: the ensemble beats its best member", [best], by[ensemble],
                                 kind="ensemble_member"))
    ks = [n for n in by if re.fullmatch(r"student_k\d+", n) and has(n) and _mean_wer(by[n], "dev") is not None]
    if ks and has("student_kall"):
        best = min(ks, key=lambda n: _mean_wer(by[n], "dev"))
        rows.append(ClaimRow(f"which k: `{best}` (best on dev) vs k = all", "Yang et al.: the top-k essence is enough: no worse than the full distribution",
                             by["student_kall"], by[best], no_worse=True, kind="which_k"))
    init = f"student_init_{student.split('_', 1)[-1]}"
    if has(init) and has(student):
        rows.append(ClaimRow("student initialised from a member", "Chebotar & Waters: initialising the student from a member helps", by[student], by[init],
                             kind="init"))
    seq = {n: s for n, s in one.items() if s.criterion not in ("", "ce") and test in s.wer}
    for n, s in seq.items():
        if s.source in one and test in one[s.source].wer:
            rows.append(ClaimRow(f"`{n}` vs its source `{s.source}`", f"Chebotar & Waters: {s.criterion} after cross-entropy helps", [one[s.source]], [s],
                                 kind="seq_source"))
    for n, s in seq.items():
        b = _seq_baselines(seq, s, baseline)
        if s.source == student and b:
            rows.append(ClaimRow(f"{s.criterion} after distillation (`{n}` vs `{b[0]}`)",
                                 f"Chebotar & Waters: {s.criterion} after distillation beats {s.criterion} of a same-size baseline, up to 8.9% relative",
                                 [seq[b[0]]], [s], kind="seq_distilled"))
    if has(ensemble):
        for n, g in by.items():
            if g[0].kind == "ensemble" and n != ensemble and has(n) and (g[0].exp / "ensemble.json").is_file():
                names = [Path(m).name for m in json.loads((g[0].exp / "ensemble.json").read_text())["members"]]
                if any(m in seq for m in names):
                    rows.append(ClaimRow(f"CE + {seq[next(m for m in names if m in seq)].criterion} ensemble `{n}`",
                                         "Chebotar & Waters: members of different criteria make a better ensemble", by[ensemble], g,
                                         kind="mixed_ensemble"))
    if has(baseline):
        for n, g in sorted(by.items(), key=lambda kv: (len(kv[1][0].lm_heads), _natural(kv[0]))):
            if g[0].lm_heads and g[0].kind == "member" and has(n) and not _in_sweep(n):
                units = sorted(g[0].lm_heads)
                rows.append(ClaimRow(f"LM heads: {' + '.join(units)}", "Lee & Chang: all three heads 7.98% -> 7.26% WER, 9% relative"
                                     if len(units) == 3 else "Lee & Chang: each LM head helps (their Table 1)", by[baseline], g,
                                     9.0 if len(units) == 3 else None, kind="lm_heads"))
    if has(student):  # stage 15's combination: the essence student with LM heads as well
        for n, g in sorted(by.items()):
            if g[0].lm_heads and g[0].kind == "student" and has(n) and n.startswith(f"{student}_lm_"):
                rows.append(ClaimRow(f"essence student + LM heads: {' + '.join(sorted(g[0].lm_heads))}",
                                     "none of the papers: Yang et al.'s student with Lee & Chang's heads", by[student], g, kind="student_lm"))
    return rows


def claims_table(root: Path, by: Dict[str, List[System]], sets, baseline: str, ensemble: str, student: str) -> List[str]:
    """The claims table (markdown lines): one row per claim of :func:`claim_rows` on the test
    set, ours as mean +- sd over seeds (n), the relative change, the paired bootstrap p-value
    and the minimum detectable effect of the seeds-pooled comparison
    (:mod:`kdhybrid.distill.significance`) and the verdict."""
    test = "test" if "test" in sets else sets[-1]
    rows = claim_rows(by, baseline, ensemble, student, test)
    if not rows:
        return []
    out = [f"Each claim on {test} (WER %, mean ± sd over seeds, n seeds). p: a two-level bootstrap, seeds then utterances "
           "(`kdhybrid.distill.significance`), so that seed-to-seed spread is not taken for an effect; relative: the gain of the "
           "claimed-better side, with its 95% interval; MDE: the relative difference this comparison detects at p < 0.05 with 80% "
           "power. A verdict needs 3 seeds on both sides; a paper's own figure comes from another corpus and baseline.", "",
           "| claim | paper | ours: claimed better | ours: reference | relative (95% interval) | p | MDE | verdict |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sides = []
        for g in (r.new, r.ref):
            sides.append([utterance_error_vector(s.hyps[test], root / "data" / test) for s in g if s.hyps.get(test)])
        if not sides[0] or not sides[1]:
            continue
        c = compare([e for e, _, _ in sides[1]], [e for e, _, _ in sides[0]], sides[0][0][1])
        cell = lambda m, sd, n, g: f"`{g[0].name}` {m:.2f}" + (f" ± {sd:.2f}" if sd is not None else "") + f" (n={n})"  # noqa: E731
        out.append(f"| {r.claim} | {r.paper} | {cell(c.new_wer, c.new_sd, c.new_n, r.new)} | {cell(c.ref_wer, c.ref_sd, c.ref_n, r.ref)} "
                   f"| {c.relative:+.1f}% ({c.low:+.1f} to {c.high:+.1f}) | {c.p:.3f} | {c.mde:.1f}% | {verdict(c, r.paper_relative, no_worse=r.no_worse)} |")
    sweep = _sweep(by, baseline, test)
    if all(len(v) >= 2 for v in sweep.values()):  # stability: the WER range over the weight grid, no pairwise test
        rng = {k: max(x for x, _ in v.values()) - min(x for x, _ in v.values()) for k, v in sweep.items()}
        seeds = min(n for v in sweep.values() for _, n in v.values())
        pts = {k: f"{len(v)} weights {min(v):g}-{max(v):g}" for k, v in sweep.items()}
        ok = rng["head"] <= rng["interpolation"] / 2  # issue 19's target: at most half interpolation's range
        out.append(f"| stability over the weight (range of {test} WER) | Lee & Chang: label interpolation is unstable across its "
                   f"hyper-parameters, the heads are not | heads: {rng['head']:.2f} ({pts['head']}) | interpolation: "
                   f"{rng['interpolation']:.2f} ({pts['interpolation']}) | - | - | - | "
                   + (("reproduced" if ok else "not reproduced") + " (head range " + ("at most" if ok else "more than")
                      + " half of interpolation's)" if seeds >= 3 else f"inconclusive ({seeds} seed(s) a point; 3 needed)") + " |")
    return out + [""]


def _ensemble_vs_members(root: Path, by: Dict[str, List[System]], rows: List[ClaimRow], test: str) -> Optional[str]:
    """Chebotar & Waters' premise: the ensemble beats its best member (chosen on dev), from the
    claims table's row. Members are the exact systems fused (``tdnn_seed2`` itself, not the
    seed group it is shown in)."""
    r = next((r for r in rows if r.kind == "ensemble_member"), None)
    if r is None:
        return None
    e, best = r.new[0], r.ref[0]
    cfg = json.loads((e.exp / "ensemble.json").read_text())
    one = _by_name(by)
    members = [Path(m).name for m in cfg["members"] if Path(m).name in one]
    mw, ew = best.wer[test], _mean_wer(r.new, test)
    return (f"**Ensemble vs its best member.** `{_group_name(r.new)}` ({cfg['fusion']} fusion of {', '.join(f'`{m}`' for m in members)}) "
            f"has {ew:.2f}% WER on {test} against {mw:.2f}% for its best member on dev, `{best.name}`: "
            f"{_relative(mw, ew, _p_value(best, e, test, root))}")


def _group_name(g: List[System]) -> str:
    """The table's name of a seed group (:func:`group_seeds`)."""
    return re.sub(r"_seed\d+$", "", g[0].name)


def _by_name(by: Dict[str, List[System]]) -> Dict[str, System]:
    """Every system by its own name (seeds too: ``by`` groups ``<name>_seed<N>`` under ``<name>``)."""
    return {s.name: s for g in by.values() for s in g}


def _relative(ref: float, new: float, p: Optional[float]) -> str:
    """'x% relative better (paired bootstrap p = ..., [not] significant at 0.05).' of ``new`` against ``ref``."""
    if ref == 0:
        return ("the same WER" if new == 0 else f"{new:.2f} points worse") + (f" (paired bootstrap p = {p:.3f})." if p is not None else ".")
    rel = 100 * (ref - new) / ref
    return (("the same WER" if rel == 0 else f"{abs(rel):.1f}% relative " + ("better" if rel > 0 else "worse"))
            + (f" (paired bootstrap p = {p:.3f}" + (", significant at 0.05)." if p < 0.05 else ", not significant at 0.05).")
               if p is not None else "."))


def _seq_baselines(seq: Dict[str, System], s: System, baseline: str) -> List[str]:
    """The sequence-trained copies of ``baseline`` in ``seq`` fine-tuned like ``s`` (criterion,
    epochs, learning rate, acoustic scale): what 'sMBR after distillation' compares ``s`` with."""
    return [m for m, h in seq.items() if h.source == baseline and h.criterion == s.criterion and h.seq_setting == s.seq_setting]


def _sequence_claims(root: Path, rows: List[ClaimRow], test: str) -> List[str]:
    """Chebotar & Waters' sequence-training claims, from the claims table's rows: each
    sequence-trained network against the cross-entropy network it was fine-tuned from; the
    sequence-trained student against the sequence-trained baseline (their 'sMBR after
    distillation'); an ensemble that mixes cross-entropy and sequence-trained members against
    the cross-entropy one."""
    out: List[str] = []
    for r in rows:
        if r.kind == "seq_source":  # each against its exact source (tdnn_seed2_smbr against tdnn_seed2, not the tdnn seed group)
            s, src = r.new[0], r.ref[0]
            out.append(f"**{s.criterion} after cross-entropy.** `{s.name}`, fine-tuned from `{s.source}`, has {s.wer[test]:.2f}% WER on "
                       f"{test} against {src.wer[test]:.2f}%: {_relative(src.wer[test], s.wer[test], _p_value(src, s, test, root))}")
    for r in rows:
        if r.kind == "seq_distilled":
            s, b = r.new[0], r.ref[0]
            out.append(f"**{s.criterion} after distillation vs {s.criterion} baseline** (Chebotar & Waters: up to 8.9% relative). "
                       f"`{s.name}` has {s.wer[test]:.2f}% WER on {test} against {b.wer[test]:.2f}% for `{b.name}`: "
                       f"{_relative(b.wer[test], s.wer[test], _p_value(b, s, test, root))}")
    for r in rows:
        if r.kind == "mixed_ensemble":
            cfg = json.loads((r.new[0].exp / "ensemble.json").read_text())
            names = [Path(m).name for m in cfg["members"]]
            ew, mw = _mean_wer(r.ref, test), _mean_wer(r.new, test)
            out.append(f"**Cross-entropy and sequence-trained members in one ensemble.** `{_group_name(r.new)}` ({cfg['fusion']} fusion of "
                       f"{', '.join(f'`{m}`' for m in names)}, weights {cfg['weights']}) has {mw:.2f}% WER on {test} against {ew:.2f}% "
                       f"for `{_group_name(r.ref)}`: {_relative(ew, mw, _p_value(r.ref[0], r.new[0], test, root))}")
    return out


# stage 15's stability experiment: <baseline>_lm_senone_w<weight> and <baseline>_lminterp_senone_l<lambda>
_SWEEP = {"head": r"_lm_senone_w([0-9.]+)", "interpolation": r"_lminterp_senone_l([0-9.]+)"}


def _in_sweep(name: str) -> bool:
    return any(re.search(pat + "$", name) for pat in _SWEEP.values())


def _sweep(by: Dict[str, List[System]], baseline: str, x: str) -> Dict[str, Dict[float, Tuple[float, int]]]:
    """The stability experiment's points on set ``x``: {"head" | "interpolation": {weight:
    (mean WER over seeds, seeds)}}."""
    return {kind: {float(m.group(1)): (_mean_wer(g, x), len(g)) for n, g in by.items()
                   for m in [re.fullmatch(re.escape(baseline) + pat, n)] if m and _mean_wer(g, x) is not None}
            for kind, pat in _SWEEP.items()}


def _lm_claims(root: Path, by: Dict[str, List[System]], rows: List[ClaimRow], baseline: str, sets, test: str) -> List[str]:
    """Lee & Chang's claims: the networks with LM heads against the hard-label baseline (dev
    frame accuracy and test WER), and the senone head against label interpolation of the same
    LM's targets (systems named ``<baseline>_lminterp_senone``)."""
    out: List[str] = []
    if baseline not in by or _mean_wer(by[baseline], test) is None:
        return out
    base = by[baseline]
    bw = _mean_wer(base, test)
    acc = [100 * x.dev_acc for x in base if x.dev_acc is not None]
    heads = []
    for r in rows:  # the claims table's LM-head rows (the sweep's points: below)
        if r.kind != "lm_heads":
            continue
        g = r.new
        a = f"dev frame accuracy {100 * g[0].dev_acc:.1f}%, " if g[0].dev_acc is not None else ""
        heads.append(f"`{_group_name(g)}` ({' + '.join(sorted(g[0].lm_heads))}: {a}{test} {_mean_wer(g, test):.2f}%, "
                     + _relative(bw, _mean_wer(g, test), _p_value(base[0], g[0], test, root)).rstrip(".") + ")")
    if heads:
        out.append(f"**LM-to-AM heads** (Lee & Chang, all three heads on LibriSpeech-100h: frame accuracy 83.23% to 84.85%, "
                   f"WER 7.98% to 7.26%, 9% relative). Against the hard-label baseline `{baseline}` "
                   f"({f'dev frame accuracy {np.mean(acc):.1f}%, ' if acc else ''}{test} {bw:.2f}%): " + "; ".join(heads) + ".")
    dev = "dev" if "dev" in sets else sets[0]
    sweep = {kind: {w: x for w, (x, _) in v.items()} for kind, v in _sweep(by, baseline, dev).items()}
    if all(len(v) >= 2 for v in sweep.values()):
        rng = {k: max(v.values()) - min(v.values()) for k, v in sweep.items()}
        row = {k: ", ".join(f"{w:g}: {x:.2f}" for w, x in sorted(v.items())) for k, v in sweep.items()}
        out.append(f"**Stability over the weight** (Lee & Chang: label interpolation is unstable across its hyper-parameters, "
                   f"the heads are not). {dev} WER (%) of `{baseline}` with a senone LM head of weight {row['head']} "
                   f"(range {rng['head']:.2f}); with the same LM's targets interpolated at lambda {row['interpolation']} "
                   f"(range {rng['interpolation']:.2f}): the head's WER varies " + ("less" if rng["head"] < rng["interpolation"] else "no less")
                   + " over its weight than interpolation's over lambda (the verdict, on the test set: the claims table).")
    heads = [n for n, g in by.items() if set(g[0].lm_heads) == {"senone"} and g[0].kind == "member" and _mean_wer(g, test) is not None
             and not _in_sweep(n)]
    interp = [n for n in by if n.startswith(f"{baseline}_lminterp") and not _in_sweep(n) and _mean_wer(by[n], test) is not None]
    if heads and interp:
        h, i = by[heads[0]], by[interp[0]]
        out.append(f"**LM head vs label interpolation** (one setting each; stability needs `--lm-sweep`). `{heads[0]}` (a senone LM head) "
                   f"has {_mean_wer(h, test):.2f}% WER on {test} against {_mean_wer(i, test):.2f}% for `{interp[0]}` (the same LM's "
                   f"targets interpolated into the main head): {_relative(_mean_wer(i, test), _mean_wer(h, test), _p_value(i[0], h[0], test, root))}")
    return out


def _claims(root: Path, by: Dict[str, List[System]], sets, baseline: str, ensemble: str, student: str, post_dir: Optional[str]) -> List[str]:
    out: List[str] = []
    test = "test" if "test" in sets else sets[-1]
    rows = claim_rows(by, baseline, ensemble, student, test)
    kinds = {r.kind for r in rows}
    if "student_baseline" in kinds:
        b, s = by[baseline], by[student]
        bw, sw = _mean_wer(b, test), _mean_wer(s, test)
        p = _p_value(b[0], s[0], test, root)
        verdict = "beats" if sw < bw else "does not beat"
        out.append(f"**Student vs baseline.** The student `{student}` {verdict} the hard-label baseline `{baseline}` on {test}: "
                   f"{sw:.2f}% vs {bw:.2f}% WER ({'mean over seeds, ' if len(s) > 1 or len(b) > 1 else ''}"
                   + (f"paired bootstrap on the first seed's per-utterance errors, p = {p:.3f}"
                      + (", significant at 0.05)." if p < 0.05 else ", not significant at 0.05).") if p is not None else "no hypotheses to test)."))
    if "student_ensemble" in kinds:
        ew, sw = _mean_wer(by[ensemble], test), _mean_wer(by[student], test)
        verdict = "beats" if sw < ew else "does not beat"
        out.append(f"**Student vs teacher ensemble.** The student {verdict} the ensemble `{ensemble}` on {test}: {sw:.2f}% vs {ew:.2f}% "
                   "(Yang et al. report the student beating the ensemble; the verdict, over seeds: the claims table).")
    t = _ensemble_vs_members(root, by, rows, test)
    if t:
        out.append(t)
    out += _sequence_claims(root, rows, test)
    out += _lm_claims(root, by, rows, baseline, sets, test)
    # the k grid: systems named student_k<k> (hard + soft) and student_k<k>_nohard (soft only)
    grid = {}
    for n, g in by.items():
        m = re.fullmatch(r"student_k(\d+|all)(_nohard)?", n)
        if m and g[0].kind == "student" and _mean_wer(g, "dev" if "dev" in sets else sets[0]) is not None:
            grid[(m.group(1), bool(m.group(2)))] = g
    post = _post_json(root, post_dir)
    if grid and post is not None:  # (a grid of students decoded on dev)
        curve = json.loads(post.read_text())["mass_curve"]
        dev = "dev" if "dev" in sets else sets[0]
        korder = sorted({k for k, _ in grid}, key=lambda k: (k == "all", int(k) if k.isdigit() else 0))

        def row(nohard: bool) -> str:
            return ", ".join(f"k={k} {_mean_wer(grid[(k, nohard)], dev):.2f}" for k in korder if (k, nohard) in grid
                             and _mean_wer(grid[(k, nohard)], dev) is not None)
        best = min(grid, key=lambda kn: _mean_wer(grid[kn], dev) or 1e9)
        name = f"student_k{best[0]}" + ("_nohard" if best[1] else "")
        mass = ", ".join(f"top-{kk} {curve[str(kk)]:.3f}" for kk in (1, 5, 10, 20, 40, 100) if str(kk) in curve)
        text = (f"**Which k.** {dev} WER (%) of the top-k students with the hard labels: {row(False) or '-'}; "
                f"without them: {row(True) or '-'}. The lowest is `{name}` ({_mean_wer(grid[best], dev):.2f}%). "
                f"The teacher's mean probability mass kept by the top k (Yang et al.'s Figure 1, `{post_dir}/mass_curve.png`): {mass}")
        if best[0].isdigit() and str(best[0]) in curve:
            text += f"; at k={best[0]} the soft labels keep {curve[str(best[0])]:.3f} of the mass and drop the rest of the tail"
        out.append(text + ". " + _k_trend(grid, korder, curve, dev, by.get(student, [])))
    interp = [n for n in by if n.startswith("student_interp")]
    if interp and student in by:
        test_sets = [x for x in sets if all(_mean_wer(by[n], x) is not None for n in (interp[0], student))]
        cmp = "; ".join(f"{x} {_mean_wer(by[student], x):.2f}% vs {_mean_wer(by[interp[0]], x):.2f}%" for x in test_sets)
        out.append(f"**Multitask vs label interpolation** (Lee & Chang's baseline): `{student}` vs `{interp[0]}`: {cmp}.")
    return out
