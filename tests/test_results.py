"""RESULTS.md from decode dirs: rows, seed grouping, the bootstrap p-value and the claims,
on a hand-made recipe dir whose numbers are known."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from kdhybrid.decode.scoring import dev_tuned, kaldi_wer_file, read_kaldi_wer_file
from kdhybrid.distill.results import paired_bootstrap, utterance_error_vector, write_results
from kdhybrid.nnet.models import ModelConfig, build_model
from kdhybrid.train.trainer import save_final

REFS = {f"u{i}": "a b c d" for i in range(40)}  # 160 words a set


def _decode(exp: Path, test_set: str, wrong: int, sweep: bool = True) -> None:
    """A decode dir scored as score_sweep scores one: at LM weight 10 (the best on dev) the
    hypotheses have ``wrong`` substitutions (one an utterance); a test set's own best, LM
    weight 12, has 2 fewer. Without ``sweep``, only hyp.txt and wer.json (``wrong``)."""
    d = exp / f"decode_tgsmall_{test_set}"
    (d / "scoring").mkdir(parents=True)
    settings = {10: wrong} if test_set == "dev" else {10: wrong, 12: wrong - 2}
    for lmwt, n in settings.items():
        hyps = "".join(f"{u} {'x b c d' if i < n else r}\n" for i, (u, r) in enumerate(REFS.items()))
        c = {"wer": round(100 * n / 160, 2), "errors": n, "words": 160, "ins": 0, "del": 0, "sub": n, "sentences": 40, "sentence_errors": n}
        (d / f"wer_{lmwt}_0.0").write_text(kaldi_wer_file(c))
        (d / "scoring" / f"{lmwt}.0.0.txt").write_text(hyps)
    best = min(settings, key=settings.get)
    (d / "hyp.txt").write_text((d / "scoring" / f"{best}.0.0.txt").read_text())
    w = {"wer": round(100 * settings[best] / 160, 2), "lmwt": best, "penalty": 0.0}
    (d / "wer.json").write_text(json.dumps(w if sweep else {"wer": w["wer"]}))


def _model(exp: Path, acc: float, distill: dict = None, hidden: int = 8) -> None:
    m = build_model(ModelConfig(arch="tdnn", num_pdfs=5, hidden=hidden, num_layers=2))
    tc = {"distill": distill or {"objective": "none"}}
    save_final(exp / "final.pt", m, torch.zeros(5), {"history": [{"dev_acc": acc - 0.1}, {"dev_acc": acc}],
                                                      "train_config": tc, "train_seconds": 100.0})


def _regenerates(root: Path, text: str) -> None:
    """The archive written with RESULTS.md holds all it was written from: RESULTS.md written again
    from the archive alone (no checkpoints, no full decode dirs) is the same text, with its pictures."""
    from kdhybrid.distill.results import regenerate_results

    a = root / "results"
    assert not list(a.rglob("*.pt")) and not list(a.rglob("lat.*")) and (a / "results_args.json").is_file()
    again = root / "again"
    again.mkdir()
    assert regenerate_results(a, again / "RESULTS.md") == text == (again / "RESULTS.md").read_text()
    for png in ("wer_by_system.png",):
        assert (again / png).read_bytes()[:4] == b"\x89PNG"


def test_results_table_and_claims(tmp_path):
    root = tmp_path
    for s in ("dev", "test"):
        (root / "data" / s).mkdir(parents=True)
        (root / "data" / s / "text").write_text("".join(f"{u} {r}\n" for u, r in REFS.items()))
    # the first 20 test utterances clean, the rest noisy
    (root / "data/test/utt2condition").write_text("".join(f"u{i} {'clean' if i < 20 else 'noise'}\n" for i in range(40)))
    post = root / "exp/ens/post_k10_train"
    post.mkdir(parents=True)
    curve = {str(k): round(min(1.0, 0.2 + 0.02 * k), 3) for k in range(1, 101)}
    for k in (10, 1):
        p = root / f"exp/ens/post_k{k}_train"
        p.mkdir(parents=True, exist_ok=True)
        (p / "post.json").write_text(json.dumps({"K": k, "topk": k, "mass_curve": curve}))
        (p / "post.scp").write_text("")
    # baseline tdnn with 3 seeds (dev/test errors 30/32, 34/36, 32/34), student_k10 with 3 seeds
    for name, dev, test in (("tdnn", 30, 32), ("tdnn_seed2", 34, 36), ("tdnn_seed3", 32, 34),
                            ("student_k10", 20, 12), ("student_k10_seed2", 22, 14), ("student_k10_seed3", 21, 13),
                            ("student_k1", 25, 26), ("student_k1_nohard", 40, 41), ("student_interp_k10", 24, 20)):
        e = root / "exp" / name
        e.mkdir(parents=True)
        k = "1" if "_k1" in name and "_k10" not in name else "10"
        obj = {"objective": "interpolation" if "interp" in name else "multitask",
               "posts": str(root / f"exp/ens/post_k{k}_train/post.scp"), "hard_weight": 0.0 if "nohard" in name else 1.0,
               "soft_weight": 1.0, "head": "main", "alpha": 0.5}
        _model(e, 0.3, None if name.startswith("tdnn") else obj)
        _decode(e, "dev", dev)
        _decode(e, "test", test)
    ens = root / "exp/ensemble_logit"
    ens.mkdir()
    (ens / "ensemble.json").write_text(json.dumps({"members": [str(root / "exp/tdnn")], "weights": [1.0], "fusion": "logit",
                                                   "selection": {"dev_acc": 0.35}}))
    _decode(ens, "dev", 24)
    _decode(ens, "test", 16)
    _decode(root / "exp/tri1", "test", 50, sweep=False)  # no dev decode: test at its own best, marked
    (root / "exp/tri1/final.pkl").write_bytes(b"")
    _decode(root / "exp/tri3", "dev", 38)  # the GMM of the condition table (the best on dev)
    _decode(root / "exp/tri3", "test", 36)
    (root / "exp/tri3/final.pkl").write_bytes(b"")
    # the recipe's stage wall times: the last record of a stage counts (7 ran twice), a gap is named
    recs = [(0, "corpus", 92, "a1"), (7, "zoo", 2500, "a1"), (7, "zoo", 2400, "b2"), (8, "decode", 3725, "b2")]
    (root / "exp/stage_times.jsonl").write_text("".join(json.dumps({"stage": n, "title": t, "seconds": sec, "finished": "2026-12-02 18:00:00",
                                                                    "nproc": 2, "commit": c}) + "\n" for n, t, sec, c in recs))
    text = write_results(root, root / "RESULTS.md", ["dev", "test"], "tdnn", "ensemble_logit", "student_k10",
                         "exp/ens/post_k10_train", extra_lines=["timing line"], archive=root / "results")  # (relative to root)
    assert "| 7 | zoo | 40 min 00 s | 2026-12-02 18:00:00 | 2 | b2 |" in text and "| 8 | decode | 1 h 02 min |" in text
    assert "| 0-8 | sum of the default run's stages above (stages 1, 2, 3, 4, 5, 6 not recorded) | 1 h 43 min |" in text
    assert "The stages ran at 2 different commits: a1, b2." in text
    _regenerates(root, text)
    assert (root / "RESULTS.md").read_text() == text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    # seeds grouped: mean and sample sd of the three WERs (32, 36, 34 errors of 160 -> 20.0, 22.5, 21.25 %)
    # test at dev's LM weight (10), not at test's own best (12, two errors fewer)
    assert "| 21.25 ± 1.25 (n=3) |" in rows["tdnn"] and "tdnn_seed2" not in rows
    assert rows["ensemble_logit"].split(" | ")[1:4] == ["ensemble", "15.00", "10.00"]
    assert rows["tri1"].split(" | ")[1:4] == ["gmm", "-", "30.00 †"]  # its own best: 48 errors
    names = [n for n in rows if n not in ("system",) and not n.startswith("---")]
    assert names.index("student_k1") < names.index("student_k1_nohard") < names.index("student_k10")
    # claim 1: student (mean 8.12% test) beats baseline (21.25%); bootstrap on the first seeds: 32 vs 12 errors
    err_b = np.array([1] * 32 + [0] * 8)
    err_s = np.array([1] * 12 + [0] * 28)
    p = paired_bootstrap(err_b, err_s, np.full(40, 4))
    assert p < 0.001
    assert "beats the hard-label baseline `tdnn` on test: 8.12% vs 21.25% WER" in text and f"p = {p:.3f}" in text
    assert "The student beats the ensemble `ensemble_logit` on test: 8.12% vs 10.00%" in text
    # Chebotar & Waters' premise: (20.00 - 10.00) / 20.00 = 50.0% below its member (exp/tdnn itself, not the seeds' mean)
    assert ("3. **Ensemble vs its best member.** `ensemble_logit` (logit fusion of `tdnn`) has 10.00% WER on test against "
            "20.00% for its best member on dev, `tdnn`: 50.0% relative better (paired bootstrap p = 0.000") in text
    assert "with the hard labels: k=1 15.62, k=10 13.12; without them: k=1 25.00. The lowest is `student_k10`" in text
    # why: the row against the mass curve (0.2 + 0.02 k), and what the hard labels are worth (25.00 - 15.62)
    assert ("With them the dev WER falls at every step as k grows from 1 to 10 (15.62 to 13.12) and the mass kept "
            "from 0.220 to 0.400; the hard labels are worth 9.38 points at k=1.") in text
    assert "at k=10 the soft labels keep 0.400 of the mass" in text
    assert "`student_k10` vs `student_interp_k10`: dev 13.12% vs 15.00%; test 8.12% vs 12.50%" in text
    # the archive also when test is tuned on a dev decode outside the table's sets; a dir that is not an archive, or a
    # figure outside the recipe dir, is refused before anything is written
    from kdhybrid.distill.results import regenerate_results

    t2 = write_results(root, root / "R2.md", ["test"], "tdnn", "ensemble_logit", "student_k10", archive=root / "results2")
    (root / "again2").mkdir()
    assert regenerate_results(root / "results2", root / "again2/R2.md") == t2
    before = (root / "RESULTS.md").read_text()
    with pytest.raises(ValueError, match="exp exists and is not a results archive"):
        write_results(root, root / "RESULTS.md", ["dev", "test"], "tdnn", "ensemble_logit", "student_k10", archive=root / "exp")
    (root / "abs.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match="figure .*abs.png: not a relative path inside the recipe dir"):
        write_results(root, root / "RESULTS.md", ["dev", "test"], "tdnn", "ensemble_logit", "student_k10",
                      figures=[(str(root / "abs.png"), "x")], archive=root / "results")
    assert (root / "RESULTS.md").read_text() == before and (root / "exp/tdnn/final.pt").is_file()
    # the claims table: the three seeds of each side (tdnn's err once on utterances 0-31, 0-35, 0-33 at dev's LM weight;
    # the student's on 0-11, 0-13, 0-12), built here by hand and compared as kdhybrid.distill.significance does
    from kdhybrid.distill.significance import compare

    order = [int(u[1:]) for u in sorted(REFS)]  # the utterances in Kaldi's (sorted) order: u0, u1, u10, ...
    seeds = lambda *ns: [np.array([int(i < n) for i in order]) for n in ns]  # noqa: E731
    c = compare(seeds(32, 36, 34), seeds(12, 14, 13), np.full(40, 4))
    row = [line for line in text.splitlines() if line.startswith("| student vs baseline |")][0].split(" | ")
    assert row[2:5] == ["`student_k10` 8.12 ± 0.62 (n=3)", "`tdnn` 21.25 ± 1.25 (n=3)", f"+61.8% ({c.low:+.1f} to {c.high:+.1f})"]
    assert row[5] == "0.000" and row[6] == f"{c.mde:.1f}%" and row[7] == "reproduced |"
    row = [line for line in text.splitlines() if line.startswith("| student vs ensemble |")][0].split(" | ")
    assert row[3] == "`ensemble_logit` 10.00 (n=1)" and row[7] == "inconclusive (seeds 3 vs 1; 3 needed) |"
    # WER by condition of the best GMM, the baseline, the ensemble and the student (36; 32, 16, 12 errors on utterances 0..n-1)
    assert "| condition | utterances | words | `tri3` | `tdnn` | `ensemble_logit` | `student_k10` |" in text
    assert "| clean | 20 | 80 | 25.00 | 25.00 | 20.00 | 15.00 |" in text and "| noise | 20 | 80 | 20.00 | 15.00 | 0.00 | 0.00 |" in text
    # the pictures, written beside RESULTS.md and embedded after the notes
    for png in ("wer_by_system.png", "wer_vs_k.png"):
        assert (root / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in text
    assert not (root / "lm_ablation.png").exists()
    assert text.index("timing line") < text.index("](wer_by_system.png)")
    # the compare command: one column a system, test at dev's setting, † at its own best
    from kdhybrid.distill.results import compare_table

    table = compare_table([root / "exp/tdnn", root / "exp/ensemble_logit", root / "exp/tri1"], ["dev", "test"], ["tgsmall"])
    lines = table.splitlines()
    assert lines[0].split() == ["#", "system", "tdnn", "ensemble_logit", "tri1"]
    assert lines[1].split() == ["#", "WER", "dev", "(tgsmall)", "18.75", "15.00", "-"]
    assert lines[2].split() == ["#", "WER", "test", "(tgsmall)", "20.00", "10.00", "30.00", "†"]
    assert lines[3].split()[-3:] == ["30.0", "35.0", "-"] and lines[-1].startswith("# † scored at that set's own best")


def test_dev_tuned_scoring_reads_the_kaldi_files(tmp_path):
    """A wer_<lmwt>_<penalty> file read back gives the counts written; a test dir is scored at
    dev's setting; a dev dir without a setting, or a test dir not scored at it, gives None."""
    c = {"wer": 12.5, "errors": 20, "words": 160, "ins": 3, "del": 5, "sub": 12, "sentences": 40, "sentence_errors": 9}
    (tmp_path / "w").write_text(kaldi_wer_file(c))
    assert read_kaldi_wer_file(tmp_path / "w") == c
    _decode(tmp_path / "e", "dev", 8)
    _decode(tmp_path / "e", "test", 6)
    counts, lmwt, wip, hyps = dev_tuned(tmp_path / "e/decode_tgsmall_test", tmp_path / "e/decode_tgsmall_dev")
    assert (counts["errors"], lmwt, wip, hyps.name) == (6, 10, 0.0, "10.0.0.txt")
    (tmp_path / "e/decode_tgsmall_test/scoring/10.0.0.txt").unlink()
    assert dev_tuned(tmp_path / "e/decode_tgsmall_test", tmp_path / "e/decode_tgsmall_dev") is None
    _decode(tmp_path / "f", "dev", 8, sweep=False)
    _decode(tmp_path / "f", "test", 6)
    assert dev_tuned(tmp_path / "f/decode_tgsmall_test", tmp_path / "f/decode_tgsmall_dev") is None
    (tmp_path / "bad").write_text("%WER nothing\n")
    with pytest.raises(ValueError, match="bad: no '%WER"):
        read_kaldi_wer_file(tmp_path / "bad")


def test_paired_bootstrap_identical_systems_is_not_significant():
    e = np.array([1, 0, 2, 0, 1, 3, 0, 0, 1, 1])
    assert paired_bootstrap(e, e, np.full(10, 5)) == 1.0


def test_wer_counts_with_empty_hypotheses_and_references():
    """Errors equal kaldialign's edit distance summed over utterances, also for empty or
    missing hypotheses (all deletions) and empty references (all insertions)."""
    import kaldialign

    from kdhybrid.decode.scoring import wer_counts

    refs = {"a": "the cat sat on the mat", "b": "hello world", "c": "one two three", "d": "", "e": "x y"}
    hyps = {"a": "the cat sat the hat", "b": "", "c": "one too three four", "d": "noise words"}  # e missing
    c = wer_counts(refs, hyps)
    expect = sum(kaldialign.edit_distance(refs[k].split(), hyps.get(k, "").split())["total"] for k in refs)
    assert c["errors"] == expect == 2 + 2 + 2 + 2 + 2
    assert (c["ins"], c["del"], c["sub"], c["words"]) == (3, 5, 2, 13)
    assert c["wer"] == round(100 * 10 / 13, 2) and c["sentence_errors"] == 5


def test_wer_by_condition_and_voice(tmp_path):
    """wer_by_group.json: each condition's and voice's errors counted over its own utterances
    (counts by hand), utterances a table lacks under "unknown"; the bin prints the table and
    refuses a data dir without the tables."""
    import json
    import subprocess
    import sys

    from kdhybrid.decode.scoring import write_wer_by_group

    data, dec = tmp_path / "data", tmp_path / "decode"
    data.mkdir()
    dec.mkdir()
    (data / "text").write_text("a x y z\nb x y\nc x\nd y y\n")
    (data / "utt2condition").write_text("a clean\nb pink\nc clean\n")
    (data / "utt2voice").write_text("a flite:slt\nb flite:slt\nc espeak:en-us\nd espeak:en-us\n")
    (dec / "hyp.txt").write_text("a x q z\nb x y y\nc \nd y y\n")  # a: 1 sub; b: 1 ins; c: 1 del; d: 0
    t = write_wer_by_group(data, dec)
    assert t == json.loads((dec / "wer_by_group.json").read_text())
    assert list(t["condition"]) == ["clean", "pink", "unknown"]
    clean, pink, unk = (t["condition"][k] for k in ("clean", "pink", "unknown"))
    assert (clean["errors"], clean["words"], clean["sub"], clean["del"], clean["sentences"]) == (2, 4, 1, 1, 2)
    assert (pink["errors"], pink["words"], pink["ins"], pink["wer"]) == (1, 2, 1, 50.0)
    assert (unk["errors"], unk["words"], unk["sentences"]) == (0, 2, 1)
    slt, us = t["voice"]["flite:slt"], t["voice"]["espeak:en-us"]
    assert (slt["errors"], slt["words"], us["errors"], us["words"]) == (2, 5, 1, 3)
    r = subprocess.run([sys.executable, "-m", "kdhybrid.bin.wer_by_group", str(data), str(dec)], capture_output=True, text=True)
    assert r.returncode == 0 and "pink" in r.stdout and " 50.00 " in r.stdout
    for f in ("utt2condition", "utt2voice"):
        (data / f).unlink()
    r = subprocess.run([sys.executable, "-m", "kdhybrid.bin.wer_by_group", str(data), str(dec)], capture_output=True, text=True)
    assert r.returncode == 1 and "utt2condition" in r.stderr


def test_results_sequence_trained_rows_and_claims(tmp_path):
    """Sequence-trained networks (their checkpoints name the criterion and the final.pt they
    started from): a row whose 'what' gives the criterion and the source, and Chebotar &
    Waters' claims (each against its source; the sMBR student against the sMBR baseline; an
    ensemble with a sequence-trained member against the cross-entropy one), numbers known."""
    root = tmp_path
    for s in ("dev", "test"):
        (root / "data" / s).mkdir(parents=True)
        (root / "data" / s / "text").write_text("".join(f"{u} {r}\n" for u, r in REFS.items()))
    kd = {"objective": "multitask", "posts": str(root / "nowhere/post.scp"), "hard_weight": 1.0, "soft_weight": 1.0, "head": "main"}
    # tdnn_seed2 is a member of its own (the zoo's second TDNN seed) that the table groups with tdnn
    for name, dev, test, src in (("tdnn", 30, 32, None), ("tdnn_seed2", 34, 36, None), ("student_k10", 20, 12, None),
                                 ("tdnn_smbr", 26, 28, "tdnn"), ("tdnn_seed2_smbr", 30, 30, "tdnn_seed2"),
                                 ("tdnn_a_smbr", 26, 20, "tdnn"),  # another learning rate: not the student's sMBR baseline
                                 ("student_k10_smbr", 18, 10, "student_k10")):
        e = root / "exp" / name
        e.mkdir(parents=True)
        if src is None:
            _model(e, 0.3, kd if name.startswith("student") else None)
        else:
            m = build_model(ModelConfig(arch="tdnn", num_pdfs=5, hidden=8, num_layers=2))
            save_final(e / "final.pt", m, torch.zeros(5), {
                "history": [{"epoch": 1, "objective_per_frame": 0.9, "seconds": 50.0}], "epoch": 2, "criterion": "smbr",
                "train_config": {"epochs": 2, "lr": 1e-4 if "_a_" in name else 5e-05, "sequence": {"criterion": "smbr", "acwt": 0.1}}, "train_seconds": 50.0,
                "init_from": f"exp/{src}/final.pt"})  # relative to the recipe dir, as the recipe passes it
        _decode(e, "dev", dev)
        _decode(e, "test", test)
    for name, members, test in (("ensemble_logit", ["tdnn", "tdnn_seed2"], 16), ("ensemble_logit_smbr", ["tdnn", "tdnn_smbr"], 14)):
        ens = root / "exp" / name
        ens.mkdir()
        (ens / "ensemble.json").write_text(json.dumps({"members": [f"exp/{m}" for m in members], "weights": [1.0 / len(members)] * len(members),
                                                       "fusion": "logit", "selection": {"dev_acc": 0.35}}))
        _decode(ens, "dev", 24)
        _decode(ens, "test", test)
    text = write_results(root, root / "RESULTS.md", ["dev", "test"], "tdnn", "ensemble_logit", "student_k10", archive=root / "results")
    _regenerates(root, text)
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    # test at dev's LM weight: 28 errors of 160 words; no dev frame accuracy; the source's description
    assert rows["tdnn_smbr"][1:7] == ["member", "16.25", "17.50", "-", "0.00 M", "50"]
    assert rows["tdnn_smbr"][-1] == "smbr (2 epochs, lr 5e-05, acwt 0.1) from tdnn: tdnn 8x2, hard labels |"
    assert rows["student_k10_smbr"][1] == "student" and rows["student_k10_smbr"][-1].startswith("smbr (2 epochs, lr 5e-05, acwt 0.1) from student_k10: tdnn 8x2, multitask")
    def errs(name):  # per-utterance errors of test at dev's LM weight (10)
        return utterance_error_vector(root / f"exp/{name}/decode_tgsmall_test/scoring/10.0.0.txt", root / "data/test")[0]

    b, s28, s10 = errs("tdnn"), errs("tdnn_smbr"), errs("student_k10_smbr")
    assert (b.sum(), s28.sum(), s10.sum()) == (32, 28, 10)
    p1 = paired_bootstrap(b, s28, np.full(40, 4))
    # against its own source, not the tdnn seed group's mean (21.25): (20.00 - 17.50) / 20.00 = 12.5% relative
    assert (f"**smbr after cross-entropy.** `tdnn_smbr`, fine-tuned from `tdnn`, has 17.50% WER on test against 20.00%: "
            f"12.5% relative better (paired bootstrap p = {p1:.3f}") in text
    assert "`student_k10_smbr`, fine-tuned from `student_k10`, has 6.25% WER on test against 7.50%: 16.7% relative better" in text
    assert "`tdnn_seed2_smbr`, fine-tuned from `tdnn_seed2`, has 18.75% WER on test against 22.50%: 16.7% relative better" in text
    # the sMBR student against the sMBR baseline: (17.50 - 6.25) / 17.50 = 64.3%
    p2 = paired_bootstrap(s28, s10, np.full(40, 4))
    assert (f"`student_k10_smbr` has 6.25% WER on test against 17.50% for `tdnn_smbr`: 64.3% relative better "
            f"(paired bootstrap p = {p2:.3f}") in text
    # the mixed ensemble: (10.00 - 8.75) / 10.00 = 12.5%; the CE ensemble's own claim is unchanged
    assert ("`ensemble_logit_smbr` (logit fusion of `tdnn`, `tdnn_smbr`, weights [0.5, 0.5]) has 8.75% WER on test against 10.00% "
            "for `ensemble_logit`: 12.5% relative better") in text
    # both seeds are members; the best on dev (tdnn, 30 errors against 34) with its own test WER
    assert ("`ensemble_logit` (logit fusion of `tdnn`, `tdnn_seed2`) has 10.00% WER on test against 20.00% for its best member on dev, "
            "`tdnn`: 50.0% relative better") in text
    # the claims table: each sequence-trained network against its exact source, one seed a side
    claims = {line.split(" | ")[0][2:]: line.split(" | ") for line in text.splitlines() if line.startswith("| ") and " | Chebotar" in line}
    assert claims["`tdnn_smbr` vs its source `tdnn`"][2:4] == ["`tdnn_smbr` 17.50 (n=1)", "`tdnn` 20.00 (n=1)"]
    assert claims["`tdnn_smbr` vs its source `tdnn`"][5] == f"{p1:.3f}"  # one seed a side: the paired bootstrap
    assert claims["smbr after distillation (`student_k10_smbr` vs `tdnn_smbr`)"][4].startswith("+64.3% (")
    assert claims["CE + smbr ensemble `ensemble_logit_smbr`"][4].startswith("+12.5% (")
    assert claims["ensemble vs best member (`tdnn`)"][2:4] == ["`ensemble_logit` 10.00 (n=1)", "`tdnn` 20.00 (n=1)"]


def test_results_lm_head_rows_and_claims(tmp_path):
    """LM-to-AM distillation: networks trained with LM heads (their checkpoints' lm_heads
    weights) get the heads in their row, and Lee & Chang's claims (each against the baseline;
    the senone head against label interpolation of the same targets) with numbers known."""
    root = tmp_path
    for s in ("dev", "test"):
        (root / "data" / s).mkdir(parents=True)
        (root / "data" / s / "text").write_text("".join(f"{u} {r}\n" for u, r in REFS.items()))
    interp = {"objective": "interpolation", "posts": str(root / "nowhere/post.scp"), "alpha": 0.3, "hard_weight": 1.0, "soft_weight": 1.0}
    for name, heads, test in (("tdnn", {}, 32), ("tdnn_lm_senone", {"senone": 0.3}, 30),
                              ("tdnn_lm_monophone_senone_subword", {"monophone": 0.3, "senone": 0.3, "subword": 0.3}, 24),
                              ("tdnn_lm_subword", {"subword": 0.0, "monophone": 0.3}, 34), ("tdnn_lminterp_senone", None, 36),
                              # the stability experiment: dev errors 30 + the test errors' last digit below
                              ("tdnn_lm_senone_w0.1", {"senone": 0.1}, 31), ("tdnn_lm_senone_w0.5", {"senone": 0.5}, 32),
                              ("tdnn_lminterp_senone_l0.1", None, 33), ("tdnn_lminterp_senone_l0.5", None, 38)):
        e = root / "exp" / name
        e.mkdir(parents=True)
        m = build_model(ModelConfig(arch="tdnn", num_pdfs=5, hidden=8, num_layers=2))
        tc = {"distill": interp if heads is None else {"objective": "none"}, "lm_heads": {"weights": heads or {}}}
        save_final(e / "final.pt", m, torch.zeros(5), {"history": [{"dev_acc": 0.3 + test / 1000}], "train_config": tc, "train_seconds": 1.0})
        _decode(e, "dev", 30 + (test % 10 if "_w0" in name or "_l0" in name else 0))
        _decode(e, "test", test)
    # the essence student, and the same with the three heads (stage 15's combination): a student, not a row of the ablation
    kd = {"objective": "multitask", "posts": str(root / "nowhere/post.scp"), "hard_weight": 1.0, "soft_weight": 1.0, "head": "main"}
    for name, heads, test in (("student_k10", {}, 28), ("student_k10_lm_monophone_senone_subword", {"monophone": 0.3, "senone": 0.3, "subword": 0.3}, 26)):
        e = root / "exp" / name
        e.mkdir(parents=True)
        m = build_model(ModelConfig(arch="tdnn", num_pdfs=5, hidden=8, num_layers=2))
        save_final(e / "final.pt", m, torch.zeros(5), {"history": [{"dev_acc": 0.3}], "train_config": {"distill": kd, "lm_heads": {"weights": heads}},
                                                       "train_seconds": 1.0})
        _decode(e, "dev", 30)
        _decode(e, "test", test)
    text = write_results(root, root / "RESULTS.md", ["dev", "test"], "tdnn", "ensemble_logit", "student_k10", archive=root / "results")
    _regenerates(root, text)
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    row = rows["essence student + LM heads: monophone + senone + subword"]  # (28 - 26) / 28 errors = 7.1% relative
    assert row[2:5] == ["`student_k10_lm_monophone_senone_subword` 16.25 (n=1)", "`student_k10` 17.50 (n=1)", row[4]] and row[4].startswith("+7.1% (")
    assert "`student_k10_lm" not in text.split("**LM-to-AM heads**")[1].split("\n")[0]  # not in the ablation's paragraph
    # dev errors 31, 32 (head) and 33, 38 (interpolation) of 160 words
    assert ("dev WER (%) of `tdnn` with a senone LM head of weight 0.1: 19.38, 0.5: 20.00 (range 0.62); with the same LM's targets "
            "interpolated at lambda 0.1: 20.62, 0.5: 23.75 (range 3.13): the head's WER varies less") in text
    assert rows["tdnn_lm_monophone_senone_subword"][-1] == "tdnn 8x2, hard labels, LM heads monophone 0.3, senone 0.3, subword 0.3 |"
    assert rows["tdnn_lm_subword"][-1] == "tdnn 8x2, hard labels, LM heads monophone 0.3 |"  # a weight of 0 is no head
    assert rows["tdnn_lminterp_senone"][1] == "student"

    def errs(name):
        return utterance_error_vector(root / f"exp/{name}/decode_tgsmall_test/scoring/10.0.0.txt", root / "data/test")[0]

    w = np.full(40, 4)
    p_all = paired_bootstrap(errs("tdnn"), errs("tdnn_lm_monophone_senone_subword"), w)
    p_sen = paired_bootstrap(errs("tdnn"), errs("tdnn_lm_senone"), w)
    # one head first, then all three; test WER 30/160 = 18.75 and 24/160 = 15.00 against 20.00
    assert ("Against the hard-label baseline `tdnn` (dev frame accuracy 33.2%, test 20.00%): `tdnn_lm_senone` (senone: dev frame "
            f"accuracy 33.0%, test 18.75%, 6.2% relative better (paired bootstrap p = {p_sen:.3f}, not significant at 0.05)); ") in text
    assert (f"`tdnn_lm_monophone_senone_subword` (monophone + senone + subword: dev frame accuracy 32.4%, test 15.00%, 25.0% relative "
            f"better (paired bootstrap p = {p_all:.3f}") in text
    assert "`tdnn_lm_subword` (monophone: dev frame accuracy 33.4%, test 21.25%, 6.2% relative worse" in text
    # the senone head (30 errors) against interpolation (36): (22.50 - 18.75) / 22.50 = 16.7%
    p_int = paired_bootstrap(errs("tdnn_lminterp_senone"), errs("tdnn_lm_senone"), w)
    assert ("`tdnn_lm_senone` (a senone LM head) has 18.75% WER on test against 22.50% for `tdnn_lminterp_senone` (the same LM's "
            f"targets interpolated into the main head): 16.7% relative better (paired bootstrap p = {p_int:.3f}") in text
    # the claims table: all three heads against the paper's 9%; the stability row (one run a point: no verdict)
    row = [line for line in text.splitlines() if line.startswith("| LM heads: monophone + senone + subword |")][0].split(" | ")
    assert row[1] == "Lee & Chang: all three heads 7.98% -> 7.26% WER, 9% relative" and row[4].startswith("+25.0% (")
    assert row[7] == "inconclusive (seeds 1 vs 1; 3 needed) |"
    row = [line for line in text.splitlines() if line.startswith("| stability over the weight")][0].split(" | ")
    # test errors 31, 32 (head) and 33, 38 (interpolation): ranges 0.62 and 3.13 points (WERs rounded to 0.01: 23.75 - 20.62)
    assert row[2:4] == ["heads: 0.62 (2 weights 0.1-0.5)", "interpolation: 3.13 (2 weights 0.1-0.5)"]
    assert row[7] == "inconclusive (1 seed(s) a point; 3 needed) |"
    assert (root / "lm_ablation.png").read_bytes()[:4] == b"\x89PNG" and "](lm_ablation.png)" in text


def test_committed_results_regenerate(tmp_path):
    """The committed RESULTS.md is what the code writes from the committed run's archive
    (egs/synth_en/s5/results, written by the recipe's results step beside RESULTS.md)."""
    from kdhybrid.distill.results import regenerate_results

    s5 = Path(__file__).resolve().parent.parent / "egs/synth_en/s5"
    if not (s5 / "results/results_args.json").is_file():
        pytest.skip("no run archive committed yet (egs/synth_en/s5/results): the committed RESULTS.md predates the archive")
    assert regenerate_results(s5 / "results", tmp_path / "RESULTS.md") == (s5 / "RESULTS.md").read_text()


def test_stage_times_of_a_recipe_script(tmp_path, venv_env):
    """steps/stage_times.sh as a recipe uses it: each stage that finished gets one record in
    exp/stage_times.jsonl, with its wall time and the checkout's commit; a stage that fails
    records nothing, and a line that is not a record is an error naming the file and line."""
    import subprocess

    from kdhybrid.io.stage_times import code_commit, read_stage_times

    script = tmp_path / "run.sh"
    script.write_text("set -euo pipefail\n"
                      f". {REPO}/steps/stage_times.sh\n"
                      'stage_begin 1 "first stage"\nsleep 1\n'
                      'stage_begin 2 "second"\n[ "${FAIL:-0}" = 1 ] && exit 3\ntrue\n')
    for fail, rc in (("0", 0), ("1", 3)):
        d = tmp_path / f"fail{fail}"
        d.mkdir()
        r = subprocess.run(["bash", str(script)], cwd=d, env=dict(venv_env, FAIL=fail), capture_output=True, text=True)
        assert r.returncode == rc, r.stderr
        assert "Stage 1: first stage" in r.stdout and "Stage 2: second" in r.stdout
        recs = read_stage_times(d / "exp/stage_times.jsonl")
        assert sorted(recs) == ([1, 2] if rc == 0 else [1]), recs
        assert recs[1]["title"] == "first stage" and 1 <= recs[1]["seconds"] <= 30 and recs[1]["commit"] == code_commit()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert code_commit().rstrip("+") == head
    bad = tmp_path / "fail0/exp/stage_times.jsonl"
    bad.write_text(bad.read_text() + '{"stage": "x"}\n')
    with pytest.raises(ValueError, match=f"{bad}:3: not a stage record"):
        read_stage_times(bad)
