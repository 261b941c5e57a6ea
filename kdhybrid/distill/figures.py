"""The pictures RESULTS.md embeds: WER per system, WER against k, and the LM-distillation ablation.

Every function checks its input before drawing (a bad input is a ValueError naming the
offending item, and no file is written), writes its PNG atomically (``<out>.tmp.png`` in the
same dir, then renamed), closes its figure, and returns the numbers it plotted so that the
caller (and the tests) can check them against the table. Means are over seeds; the spread is
the sample standard deviation (ddof=1), 0 for a single seed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

Pathlike = Union[str, Path]
ALL = "all"


def _mean_sd(values: Sequence[float], what: str) -> Tuple[float, float, int]:
    """Mean, sample sd (0 for one value) and count; ``what`` names the item in the error."""
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError(f"{what}: no WERs (empty list of seeds)")
    sd = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return float(np.mean(v)), sd, int(v.size)


def _k_int(k: str) -> Optional[int]:
    """A k key as an int, None for "all"; anything else is a ValueError naming the key."""
    if k == ALL:
        return None
    if isinstance(k, str) and re.fullmatch(r"[0-9]+", k) and int(k) > 0:
        return int(k)
    raise ValueError(f"bad k key {k!r}: expected a positive integer or {ALL!r}")


def _k_order(k: str) -> float:
    n = _k_int(k)
    return float("inf") if n is None else float(n)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Pathlike, dpi: int = 120) -> None:
    """Save ``fig`` to ``out`` atomically (creating the parent dir) and close it."""
    plt = _pyplot()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    os.replace(tmp, path)


def plot_wer_by_system(systems: Sequence[Tuple[str, Sequence[float]]], test_set: str,
                       out: Pathlike) -> List[Tuple[str, float, float, int]]:
    """One bar per system, in the given order: mean WER over its seeds, sd error bar, ``n=<seeds>``
    above the bar. ``systems``: [(name, [WER per seed])]. Returns [(name, mean, sd, n)]."""
    stats = [(name, *_mean_sd(wers, f"system {name!r}")) for name, wers in systems]
    plt = _pyplot()
    x = np.arange(len(stats))
    means = [s[1] for s in stats]
    sds = [s[2] for s in stats]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(stats) + 2), 4))
    ax.bar(x, means, yerr=sds, capsize=4, color="tab:blue", alpha=0.8)
    for xi, (_, m, sd, n) in zip(x, stats):
        ax.annotate(f"n={n}", (xi, m + sd), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([s[0] for s in stats], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{test_set} WER (%)")
    if means:
        ax.set_ylim(0, max(m + sd for m, sd in zip(means, sds)) * 1.15 or 1)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, out)
    return stats


def plot_wer_vs_k(students: Dict[str, Dict[str, Sequence[float]]], mass_curve: Dict[str, float],
                  dev_set: str, out: Pathlike) -> Dict[str, List[Tuple[str, float, float]]]:
    """Yang et al.'s Figure 1 with their k finding: dev WER of students trained on the teacher's
    top k (one line per series, sd error bars; k on a log axis, "all" one step right of the
    largest integer k) and, on the right axis, the teacher's mean probability mass kept by the
    top k (``mass_curve``, integer keys only, dashed, 0..1). ``students``: series label ->
    {k: [WER per seed]}. Returns {label: [(k, mean, sd)]} sorted by k, "all" last."""
    for k in mass_curve:
        _k_int(k)
    series: Dict[str, List[Tuple[str, float, float]]] = {}
    for label, by_k in students.items():
        rows = []
        for k in sorted(by_k, key=_k_order):
            m, sd, _ = _mean_sd(by_k[k], f"series {label!r}, k={k!r}")
            rows.append((k, m, sd))
        series[label] = rows
    ints = [_k_int(k) for rows in series.values() for k, _, _ in rows if k != ALL]
    mass = sorted((_k_int(k), float(v)) for k, v in mass_curve.items() if k != ALL)
    top = max(ints + [k for k, _ in mass] + [1])
    all_x = 2.0 * top

    def xpos(k: str) -> float:
        return all_x if k == ALL else float(_k_int(k))

    plt = _pyplot()
    from matplotlib.ticker import NullFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in series.items():
        ax.errorbar([xpos(k) for k, _, _ in rows], [m for _, m, _ in rows], yerr=[sd for _, _, sd in rows],
                    marker="o", ms=4, capsize=3, label=label)
    ax.set_xscale("log")
    ticks = sorted({k for rows in series.values() for k, _, _ in rows} | {ALL}, key=_k_order)
    ax.set_xticks([xpos(k) for k in ticks])
    ax.set_xticklabels(ticks)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("k (most probable teacher senones kept)")
    ax.set_ylabel(f"{dev_set} WER (%)")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    if mass:
        ax2.plot([k for k, _ in mass], [v for _, v in mass], "--", color="gray", label="teacher mass of top k")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("teacher's mean probability mass of the top k")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    if h1 or h2:
        ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="best")
    _save(fig, out)
    return series


def plot_lm_ablation(rows: Sequence[Tuple[str, Optional[float], Sequence[float]]], baseline: str,
                     test_set: str, out: Pathlike) -> List[Tuple[str, float, float]]:
    """Lee & Chang's Table 1 as two panels sharing the rows: left, mean test WER (sd error bars)
    with a dotted line at the baseline's; right, dev frame accuracy (an empty slot for None).
    The baseline's bars are drawn in another colour. ``rows``: [(name, dev acc % or None,
    [test WER per seed])]. Returns [(name, mean WER, sd)]."""
    names = [r[0] for r in rows]
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the rows {names}")
    stats = [(name, *_mean_sd(wers, f"system {name!r}")[:2]) for name, _, wers in rows]
    base_mean = stats[names.index(baseline)][1]
    colours = ["tab:orange" if n == baseline else "tab:blue" for n in names]
    y = np.arange(len(rows))
    plt = _pyplot()
    fig, (axw, axa) = plt.subplots(1, 2, sharey=True, figsize=(9, 0.45 * len(rows) + 1.8))
    axw.barh(y, [m for _, m, _ in stats], xerr=[sd for _, _, sd in stats], color=colours, capsize=3)
    axw.axvline(base_mean, linestyle=":", color="black", label=f"{baseline}: {base_mean:.2f}")
    axw.set_xlabel(f"{test_set} WER (%)")
    axw.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1), frameon=False)
    acc = [(yi, a, c) for yi, (_, a, _), c in zip(y, rows, colours) if a is not None]
    if acc:
        axa.barh([a[0] for a in acc], [a[1] for a in acc], color=[a[2] for a in acc])
        for yi, a, _ in acc:
            axa.annotate(f"{a:.1f}", (a, yi), textcoords="offset points", xytext=(3, 0), va="center", fontsize=7)
        axa.set_xlim(0, 100)
    axa.set_xlabel("dev frame accuracy (%)")
    axw.set_yticks(y)
    axw.set_yticklabels(names, fontsize=8)
    axw.invert_yaxis()
    for a in (axw, axa):
        a.grid(axis="x", alpha=0.3)
    _save(fig, out)
    return stats
