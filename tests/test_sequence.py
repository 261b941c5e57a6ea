"""Sequence-discriminative objectives (MMI, boosted MMI, sMBR) on hand-built tiny lattices,
against brute-force enumeration of every path in float64: denominator log-likelihood, the
objectives, their gradients (numerator minus denominator posteriors; posterior times accuracy
minus average accuracy) and finite differences; boost 0 is MMI; a lattice of the reference
path alone; rescoring with the generating model reproduces the search's scores; bad input.

Inputs are on dyadic grids (log posteriors in 1/64, graph scores in 1/16, acwt 1/8) where
the comparison is exact: every arc score is then a float32 number, as k2 stores them, and
k2's double-precision sums must equal the float64 enumeration to rounding (1e-12); gradients
are k2's float32 (1e-6)."""
import json
import math

import numpy as np
import pytest
import torch

from kdhybrid.decode.denlats import (
    arc_frames, check_arcs, check_lattice_model, lattice_frames, rescore,
)
from kdhybrid.train.sequence import PhoneSets, SequenceConfig, prepare_batch, sequence_objective

# A toy transition model: transition-id -> (pdf, phone). Phone 1 is silence (pdfs 0, 1);
# phones 2 and 3 are speech; pdf 4 is shared by phones 2 and 3 (a shared-root tree), so a
# right pdf can still be a phone error for boosting.
TIDS = {1: (0, 1), 2: (0, 1), 3: (1, 1), 4: (1, 1), 5: (2, 2), 6: (2, 2), 7: (3, 3), 8: (3, 3), 9: (4, 2), 10: (4, 3)}
NUM_PDFS = 5
SILENCE = {1}
PHONES = PhoneSets(np.array([-1] + [TIDS[t][0] for t in range(1, 11)]), np.array([0] + [TIDS[t][1] for t in range(1, 11)]), [1])
ACWT = 0.125


def make_lattice(arcs, num_states):
    """A k2 lattice from (src, dst, tid, graph score) arcs (tid 0: final arc, label -1), the
    last state final; labels pdf + 1 as the search makes them."""
    import k2

    lines = []
    for s, d, tid, g in arcs:
        label = -1 if tid == 0 else TIDS[tid][0] + 1
        lines.append(f"{s} {d} {label} {tid} {g!r}")
    lat = k2.Fsa.from_str("\n".join(lines + [str(num_states - 1)]), aux_label_names=["tid"])
    lat.graph_scores = lat.scores.clone()
    return lat


def random_lattice(rng, num_frames, ref_tids, width=3):
    """A connected frame-synchronous lattice holding the reference path and others."""
    layers, nxt = [[0]], 1
    for t in range(1, num_frames + 1):
        k = int(rng.integers(1, width + 1)) if t < num_frames else int(rng.integers(1, 3))
        layers.append(list(range(nxt, nxt + k)))
        nxt += k
    final = nxt
    g = lambda: float(rng.integers(-48, 1)) / 16  # noqa: E731
    tid = lambda: int(rng.integers(1, 11))  # noqa: E731
    path = [0] + [int(rng.choice(layer)) for layer in layers[1:]]
    arcs = {(path[t], path[t + 1], int(ref_tids[t]), g()) for t in range(num_frames)}
    for t in range(num_frames):
        for s in layers[t]:
            for _ in range(int(rng.integers(1, 3))):
                arcs.add((s, int(rng.choice(layers[t + 1])), tid(), g()))
        for d in layers[t + 1]:
            arcs.add((int(rng.choice(layers[t])), d, tid(), g()))
    arcs = sorted(arcs) + [(s, final, 0, g()) for s in layers[-1]]
    return make_lattice(arcs, final + 1)


def paths(lat):
    """Every path of one lattice: lists of arc indexes, in k2's arc order."""
    v = lat.arcs.values()[:, :2].tolist()
    out_arcs = {}
    for i, (s, _) in enumerate(v):
        out_arcs.setdefault(s, []).append(i)
    final = lat.shape[0] - 1
    done, todo = [], [(0, [])]
    while todo:
        s, p = todo.pop()
        if s == final:
            done.append(p)
        for i in out_arcs.get(s, []):
            todo.append((v[i][1], p + [i]))
    return done


def logsumexp(x):
    m = max(x)
    return m + math.log(sum(math.exp(v - m) for v in x))


def brute_force(lats, alis, log_posts, log_priors, acwt, boost=0.0, one_silence_class=True):
    """MMI, expected frame accuracy and d objective / d a (a = acwt * (log post - log prior))
    of every lattice by enumerating its paths. Accuracies and errors come from TIDS here, not
    from the library."""
    out = []
    for n, (lat, ali) in enumerate(zip(lats, alis)):
        a = acwt * (log_posts[n].double().numpy() - log_priors.double().numpy()[None])
        tids, graph = lat.tid.tolist(), lat.graph_scores.double().tolist()
        ps = paths(lat)
        stats = []
        for p in ps:
            gs, ac, err, acc, on_ref, pdfs = 0.0, 0.0, 0, 0, True, []
            for t, i in enumerate(p):
                gs += graph[i]
                if tids[i] == 0:
                    continue
                pdf, ph = TIDS[tids[i]]
                rpdf, rph = TIDS[int(ali[t])]
                ac += a[t, pdf]
                pdfs.append(pdf)
                on_ref &= pdf == rpdf
                err += int(ph != rph and ph not in SILENCE)
                if one_silence_class:
                    acc += int(pdf == rpdf or (ph in SILENCE and rph in SILENCE))
                else:
                    acc += int(pdf == rpdf and ph not in SILENCE)
            stats.append((gs, ac, err, acc, on_ref, pdfs))
        den = logsumexp([gs + ac + boost * e for gs, ac, e, _, _, _ in stats])
        num = logsumexp([gs + ac for gs, ac, _, _, r, _ in stats if r])
        z = logsumexp([gs + ac for gs, ac, _, _, _, _ in stats])
        post = [math.exp(gs + ac - z) for gs, ac, _, _, _, _ in stats]
        eacc = sum(q * s[3] for q, s in zip(post, stats))
        g_mmi, g_smbr = np.zeros_like(a), np.zeros_like(a)
        for t in range(len(ali)):
            g_mmi[t, TIDS[int(ali[t])][0]] += 1.0
        for (gs, ac, e, acc, _, pdfs), q in zip(stats, post):
            qb = math.exp(gs + ac + boost * e - den)
            for t, pdf in enumerate(pdfs):
                g_mmi[t, pdf] -= qb
                g_smbr[t, pdf] += q * (acc - eacc)
        out.append(dict(den=den, num=num, mmi=num - den, smbr=eacc, g_mmi=g_mmi, g_smbr=g_smbr, paths=len(ps)))
    return out


def dyadic(rng, *shape, lo=-4.0, step=64):
    return torch.tensor(rng.integers(int(lo * step), 1, size=shape) / step, dtype=torch.float64)


def problem(seed=0, lengths=(4, 6, 5)):
    """Three random lattices of different lengths, their alignments, dyadic log posteriors."""
    import k2

    rng = np.random.default_rng(seed)
    alis = [rng.integers(1, 11, size=t) for t in lengths]
    lats = [random_lattice(rng, t, ali) for t, ali in zip(lengths, alis)]
    utts = [f"utt{i}" for i in range(len(lats))]
    log_posts = dyadic(rng, len(lats), max(lengths), NUM_PDFS)
    log_priors = dyadic(rng, NUM_PDFS, lo=-2.0)
    return lats, k2.create_fsa_vec(lats), utts, dict(zip(utts, alis)), alis, log_posts, log_priors


def objective(batch, log_posts, log_priors, cfg):
    lp = log_posts.clone().requires_grad_(True)
    r = sequence_objective(batch, lp, log_priors, cfg)
    r["loss"].backward()
    return r, lp.grad


def padded(grads, shape):
    out = torch.zeros(shape, dtype=torch.float64)
    for n, g in enumerate(grads):
        out[n, : len(g)] = torch.from_numpy(g)
    return out


@pytest.mark.parametrize("criterion", ["mmi", "smbr"])
def test_objectives_and_gradients_equal_brute_force(criterion):
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem()
    batch, skipped = prepare_batch(lat, utts, ali_map, PHONES)
    assert skipped == [] and batch.utts == utts
    bf = brute_force(lats, alis, log_posts, log_priors, ACWT)
    assert min(b["paths"] for b in bf) >= 8
    cfg = SequenceConfig(criterion, acwt=ACWT, xent_regularize=0.0)
    r, grad = objective(batch, log_posts, log_priors, cfg)
    key = "mmi" if criterion == "mmi" else "smbr"
    want = torch.tensor([b[key] for b in bf], dtype=torch.float64)
    torch.testing.assert_close(r["per_utt"], want, rtol=0, atol=1e-12)
    assert float(r["objective"]) == pytest.approx(float(want.sum()), abs=1e-12)
    if criterion == "mmi":
        den = batch.lattice.get_tot_scores(log_semiring=True, use_double_scores=True)
        torch.testing.assert_close(den, torch.tensor([b["den"] for b in bf], dtype=torch.float64), rtol=0, atol=1e-12)
        assert float(r["per_utt"].max()) < 0  # the numerator's paths are among the denominator's
    else:
        assert all(0 < float(v) < t for v, t in zip(r["per_utt"], batch.lengths))
    # loss = -objective / acwt: its gradient is minus Kaldi's derivative, not scaled by acwt
    g_want = -padded([b["g_" + key] for b in bf], log_posts.shape)
    torch.testing.assert_close(grad, g_want, rtol=0, atol=1e-6)
    assert grad.abs().max() > 0.05
    torch.testing.assert_close(grad.sum(2), torch.zeros(grad.shape[:2], dtype=torch.float64), rtol=0, atol=1e-6)


@pytest.mark.parametrize("criterion", ["mmi", "bmmi", "smbr"])
def test_gradients_pass_finite_differences(criterion):
    """Central differences along random directions; steps of 2^-10 on the dyadic grid keep
    every arc score exact in float32, so only the O(eps^2) truncation remains."""
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem(seed=1)
    batch, _ = prepare_batch(lat, utts, ali_map, PHONES)
    cfg = SequenceConfig(criterion, acwt=ACWT, boost=0.5, xent_regularize=0.0)
    _, grad = objective(batch, log_posts, log_priors, cfg)
    rng = np.random.default_rng(2)
    eps = 2.0 ** -10
    for _ in range(4):
        d = torch.from_numpy(rng.integers(-1, 2, size=log_posts.shape).astype(np.float64))
        with torch.no_grad():
            up = sequence_objective(batch, log_posts + eps * d, log_priors, cfg)["loss"]
            down = sequence_objective(batch, log_posts - eps * d, log_priors, cfg)["loss"]
        fd = float(up - down) / (2 * eps)
        assert fd == pytest.approx(float((grad * d).sum()), abs=2e-5)
        assert abs(fd) > 0.01


def test_boosted_mmi():
    """Boost 0 is MMI exactly; boost b weights each denominator path by exp(b * its phone
    errors), silence arcs counting none (Kaldi's LatticeBoost with max_silence_error 0)."""
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem(seed=3)
    batch, _ = prepare_batch(lat, utts, ali_map, PHONES)
    r_mmi, g_mmi = objective(batch, log_posts, log_priors, SequenceConfig("mmi", acwt=ACWT, boost=0.7))
    r0, g0 = objective(batch, log_posts, log_priors, SequenceConfig("bmmi", acwt=ACWT, boost=0.0))
    assert torch.equal(r0["loss"], r_mmi["loss"]) and torch.equal(g0, g_mmi)
    rb, gb = objective(batch, log_posts, log_priors, SequenceConfig("bmmi", acwt=ACWT, boost=0.75, xent_regularize=0.0))
    bf = brute_force(lats, alis, log_posts, log_priors, ACWT, boost=0.75)
    torch.testing.assert_close(rb["per_utt"], torch.tensor([b["mmi"] for b in bf], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(gb, -padded([b["g_mmi"] for b in bf], log_posts.shape), rtol=0, atol=1e-6)
    assert float((rb["per_utt"] - r_mmi["per_utt"]).min()) < -0.05  # boosting the errors lowers the objective


def test_silence_class_accuracy():
    """Without one_silence_class, silence frames never count as correct (Kaldi's old sMBR)."""
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem(seed=4)
    got = {}
    for one in (True, False):
        batch, _ = prepare_batch(lat, utts, ali_map, PHONES, one_silence_class=one)
        r, g = objective(batch, log_posts, log_priors, SequenceConfig("smbr", acwt=ACWT, xent_regularize=0.0, one_silence_class=one))
        bf = brute_force(lats, alis, log_posts, log_priors, ACWT, one_silence_class=one)
        torch.testing.assert_close(r["per_utt"], torch.tensor([b["smbr"] for b in bf], dtype=torch.float64), rtol=0, atol=1e-12)
        torch.testing.assert_close(g, -padded([b["g_smbr"] for b in bf], log_posts.shape), rtol=0, atol=1e-6)
        got[one] = float(r["objective"])
    assert got[True] > got[False] + 0.1


def test_reference_path_alone():
    """A lattice that holds only the reference path: MMI 0 (its graph score is in the
    numerator too), no gradient, and expected accuracy = the frame count."""
    ali = [1, 3, 5, 5, 9, 2]
    arcs = [(t, t + 1, tid, -0.25 * (t + 1)) for t, tid in enumerate(ali)] + [(6, 7, 0, -1.5)]
    lat = make_lattice(arcs, 8)
    import k2

    rng = np.random.default_rng(5)
    log_posts, log_priors = dyadic(rng, 1, 6, NUM_PDFS), dyadic(rng, NUM_PDFS, lo=-2.0)
    batch, _ = prepare_batch(k2.create_fsa_vec([lat]), ["u"], {"u": np.array(ali)}, PHONES)
    assert float(batch.num_graph[0]) == -0.25 * 21 - 1.5
    r, g = objective(batch, log_posts, log_priors, SequenceConfig("mmi", acwt=ACWT, xent_regularize=0.0))
    assert float(r["objective"]) == 0.0 and float(g.abs().max()) == 0.0
    r, g = objective(batch, log_posts, log_priors, SequenceConfig("smbr", acwt=ACWT, xent_regularize=0.0))
    assert float(r["objective"]) == 6.0 and float(g.abs().max()) < 1e-12


def test_per_frame_constant_changes_nothing():
    """Adding a constant per frame to the log posteriors (what the log-softmax removes)
    changes neither objective, and the gradients through a log-softmax equal those with
    respect to the log posteriors (they sum to 0 per frame)."""
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem(seed=6)
    batch, _ = prepare_batch(lat, utts, ali_map, PHONES)
    shift = dyadic(np.random.default_rng(7), 3, 6, 1, lo=-2.0)
    for crit in ("mmi", "smbr"):
        cfg = SequenceConfig(crit, acwt=ACWT, xent_regularize=0.0)
        r1, _ = objective(batch, log_posts, log_priors, cfg)
        r2, _ = objective(batch, log_posts + shift, log_priors, cfg)
        torch.testing.assert_close(r1["per_utt"], r2["per_utt"], rtol=0, atol=1e-12)
        logits = log_posts.clone().requires_grad_(True)
        lp = logits.log_softmax(-1)
        lp.retain_grad()
        sequence_objective(batch, lp, log_priors, cfg)["loss"].backward()
        torch.testing.assert_close(logits.grad, lp.grad, rtol=0, atol=1e-6)


def test_xent_regularization():
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem(seed=8)
    batch, _ = prepare_batch(lat, utts, ali_map, PHONES)
    lp = log_posts.log_softmax(-1)
    r0, g0 = objective(batch, lp, log_priors, SequenceConfig("smbr", acwt=ACWT, xent_regularize=0.0))
    r1, g1 = objective(batch, lp, log_priors, SequenceConfig("smbr", acwt=ACWT, xent_regularize=0.25))
    ce = -sum(float(lp[n, t, TIDS[int(a)][0]]) for n, ali in enumerate(alis) for t, a in enumerate(ali))
    assert float(r1["xent"]) == pytest.approx(ce, abs=1e-12)
    assert float(r1["loss"]) == pytest.approx(float(r0["loss"]) + 0.25 * ce, abs=1e-12)
    onehot = torch.zeros_like(lp)
    for n, ali in enumerate(alis):
        onehot[n, torch.arange(len(ali)), torch.tensor([TIDS[int(a)][0] for a in ali])] = 1.0
    torch.testing.assert_close(g1, g0 - 0.25 * onehot, rtol=0, atol=1e-6)


def test_mmi_frame_dropping():
    """Frames whose reference pdf has (almost) no denominator posterior get no gradient; the
    objective is unchanged. With Kaldi's threshold (0 in single precision) a frame drops
    when the reference's posterior underflows; a larger threshold drops more."""
    import k2

    # two paths: the reference (graph score -200: posterior e^-200, below 2^-150) and another
    # with different pdfs at frames 1 and 2 only
    ali = [5, 7, 7, 9]
    arcs = [(0, 1, 5, 0.0), (1, 2, 7, -200.0), (1, 3, 1, 0.0), (2, 4, 7, 0.0), (3, 4, 3, 0.0), (4, 5, 9, 0.0), (5, 6, 0, 0.0)]
    lat = k2.create_fsa_vec([make_lattice(arcs, 7)])
    batch, _ = prepare_batch(lat, ["u"], {"u": np.array(ali)}, PHONES)
    lp = torch.zeros(1, 4, NUM_PDFS, dtype=torch.float64)
    keep, drop = SequenceConfig("mmi", acwt=ACWT, drop_frames=False, xent_regularize=0.0), SequenceConfig("mmi", acwt=ACWT, xent_regularize=0.0)
    rk, gk = objective(batch, lp, torch.zeros(NUM_PDFS), keep)
    rd, gd = objective(batch, lp, torch.zeros(NUM_PDFS), drop)
    assert float(rk["objective"]) == pytest.approx(-200.0, abs=1e-9) and torch.equal(rk["objective"], rd["objective"])
    assert int(rk["dropped_frames"]) == 0 and int(rd["dropped_frames"]) == 2
    assert float(gd[0, 1:3].abs().max()) == 0.0 and float(gk[0, 1:3].abs().max()) == pytest.approx(1.0)
    torch.testing.assert_close(gd[0, [0, 3]], gk[0, [0, 3]])
    # a threshold of 0.3 on the random problem: dropped frames have zero gradient, the others brute force's
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem(seed=9)
    batch, _ = prepare_batch(lat, utts, ali_map, PHONES)
    r, g = objective(batch, log_posts, log_priors, SequenceConfig("mmi", acwt=ACWT, xent_regularize=0.0, drop_threshold=0.3))
    bf = -padded([b["g_mmi"] for b in brute_force(lats, alis, log_posts, log_priors, ACWT)], log_posts.shape)
    zero = g.abs().sum(2) == 0
    assert 0 < int(r["dropped_frames"]) == int((zero & (bf.abs().sum(2) > 0)).sum())
    torch.testing.assert_close(g[~zero], bf[~zero], rtol=0, atol=1e-6)


def test_rescoring_reproduces_the_search_scores():
    """Lattices searched by the decoder's own k2 search over a small graph, rescored with the
    same scaled log-likelihoods, get back their stored scores; frames from the topology equal
    k2's own frame index of the intersection."""
    import k2

    from kdhybrid.decode.k2_backend import dense_scores, search

    # a 3-pdf loop graph: labels pdf + 1, transition-ids and graph scores as hclg_to_k2 makes them
    text = "\n".join([
        "0 1 1 1 -0.5", "0 2 3 5 -1.0", "1 1 1 2 -0.2", "1 2 3 5 -0.9", "1 3 2 3 -1.2",
        "2 2 3 6 -0.3", "2 1 1 1 -1.1", "2 3 2 4 -0.7", "2 4 -1 0 -0.8", "3 3 2 4 -0.4", "3 4 -1 0 -0.6", "4",
    ])
    graph = k2.arc_sort(k2.Fsa.from_str(text, aux_label_names=["tid"]))
    graph.graph_scores = graph.scores.clone()
    scores = [ACWT * torch.randn(t, 3, generator=torch.Generator().manual_seed(t)) for t in (9, 14, 11)]
    lat, failed = search(graph, scores, 30.0, 8.0, 1, 1000)
    assert failed == 0 and lattice_frames(lat) == [9, 14, 11]
    stored = lat.scores.clone()
    pad = torch.zeros(3, 14, 3)
    for i, s in enumerate(scores):
        pad[i, : len(s)] = s
    rescore(lat, pad.double())
    torch.testing.assert_close(lat.scores, stored, rtol=0, atol=1e-5)
    assert float((stored - lat.graph_scores).abs().max()) > 0.1
    dense, _ = dense_scores(scores)
    full = k2.intersect_dense(k2.create_fsa_vec([graph]), dense, 100.0, frame_idx_name="kframe")
    assert torch.equal(arc_frames(full), full.kframe.to(torch.int32))


def test_lattices_of_another_model_are_refused():
    info = {"num_pdfs": 5, "num_transition_ids": 10, "model": "exp/tdnn/final.pt"}
    check_lattice_model(info, 5, 10)
    with pytest.raises(ValueError, match=r"exp/tdnn/final.pt with 5 pdfs, but the model has 7 pdfs"):
        check_lattice_model(info, 7, 10)
    with pytest.raises(ValueError, match=r"10 transition-ids, but the model has 12 transition-ids"):
        check_lattice_model(info, 5, 12)
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem()
    check_arcs(lat, PHONES.tid2pdf)
    other = PHONES.tid2pdf.copy()
    other[6] = 3
    n6 = int((lat.tid == 6).sum())
    with pytest.raises(ValueError, match=rf"^{n6} lattice arcs .* \(first: transition-id 6 -> pdf 3, arc pdf 2\): lattices of another tree"):
        check_arcs(lat, other)
    with pytest.raises(ValueError, match=r"transition-ids outside \[1, 8\]"):
        check_arcs(lat, PHONES.tid2pdf[:9])
    batch, _ = prepare_batch(lat, utts, ali_map, PHONES)
    with pytest.raises(ValueError, match="lattice pdf 4 but the network has 4 outputs"):
        sequence_objective(batch, log_posts[:, :, :4], log_priors[:4], SequenceConfig("smbr"))


def test_bad_utterances_are_skipped_and_named():
    """An empty lattice, a lattice without the reference path and an utterance without an
    alignment are skipped with their reason; the rest trains as a batch. A lattice and an
    alignment of different lengths is an error naming both."""
    import k2

    lats, _, utts, ali_map, alis, log_posts, log_priors = problem()
    empty = k2.connect(make_lattice([(0, 1, 5, 0.0), (1, 1, 5, 0.0)], 3))
    no_ref = make_lattice([(0, 1, 5, 0.0), (1, 2, 7, 0.0), (2, 3, 0, 0.0)], 4)
    vec = k2.create_fsa_vec([lats[0], empty, no_ref, lats[1], lats[2]])
    names = ["utt0", "empty", "noref", "utt1", "noali"]
    alignments = {"utt0": ali_map["utt0"], "empty": np.array([5]), "noref": np.array([5, 10]), "utt1": ali_map["utt1"]}
    batch, skipped = prepare_batch(vec, names, alignments, PHONES)
    assert sorted(skipped) == [("empty", "empty lattice"), ("noali", "no alignment"), ("noref", "no reference path in the lattice")]
    assert batch.utts == ["utt0", "utt1"] and batch.lengths.tolist() == [4, 6]
    r, _ = objective(batch, log_posts[:2], log_priors, SequenceConfig("mmi", acwt=ACWT, xent_regularize=0.0))
    bf = brute_force(lats[:2], alis[:2], log_posts[:2], log_priors, ACWT)
    torch.testing.assert_close(r["per_utt"], torch.tensor([b["mmi"] for b in bf], dtype=torch.float64), rtol=0, atol=1e-12)
    assert prepare_batch(k2.create_fsa_vec([empty]), ["e"], {"e": np.array([5])}, PHONES) == (None, [("e", "empty lattice")])
    with pytest.raises(ValueError, match="utterance 'utt1': its lattice has 6 frames but its alignment 5"):
        prepare_batch(k2.create_fsa_vec([lats[1]]), ["utt1"], {"utt1": alis[1][:5]}, PHONES)
    with pytest.raises(ValueError, match=r"utterance 'utt0': alignment has transition-ids outside \[1, 10\]"):
        prepare_batch(k2.create_fsa_vec([lats[0]]), ["utt0"], {"utt0": np.array([1, 2, 11, 3])}, PHONES)


def test_log_posteriors_are_floored_with_the_gradient_passing():
    """Log posteriors below Kaldi's floor (-20 ln 10) score as the floor, and their gradient
    is still the posterior difference (Kaldi's derivatives ignore the floor)."""
    lats, lat, utts, ali_map, alis, log_posts, log_priors = problem(seed=11)
    batch, _ = prepare_batch(lat, utts, ali_map, PHONES)
    low = log_posts.clone()
    low[:, 1] = -100.0
    low[:, 2, :2] = -60.0
    floored = low.clamp(min=-20 * math.log(10))
    r, g = objective(batch, low, log_priors, SequenceConfig("mmi", acwt=ACWT, xent_regularize=0.0))
    bf = brute_force(lats, alis, floored, log_priors, ACWT)
    torch.testing.assert_close(r["per_utt"], torch.tensor([b["mmi"] for b in bf], dtype=torch.float64), rtol=0, atol=1e-5)
    want = -padded([b["g_mmi"] for b in bf], log_posts.shape)
    torch.testing.assert_close(g, want, rtol=0, atol=1e-6)
    assert float(g[:, 1].abs().max()) > 0.1


# ------------------------------------------------------------ training on a tiny synthetic task
# A lang dir of 12 one-state phones p0..p11 (p0 silence) and a word per phone (w<p> = p<p>),
# a monophone tree (pdf p = phone p<p>), the unigram HCLG of the training transcripts, all made
# by the library as the recipe makes them; utterances are runs of 4-10 frames of one pdf, the
# features carry the pdf weakly.
SYN_PDFS = 12


def syn_utterances(rng, n, prefix):
    out = {}
    for i in range(n):
        labels, seq = [], []
        while len(labels) < 30 or rng.random() > 0.3:
            p = int(rng.choice([q for q in range(SYN_PDFS) if not seq or q != seq[-1]]))
            seq.append(p)
            labels += [p] * int(rng.integers(4, 11))
        y = np.array(labels)
        x = rng.standard_normal((len(y), 40)).astype(np.float32)
        x[np.arange(len(y)), y] += 2.0
        tids = 2 * y + 1
        tids[np.r_[True, y[1:] != y[:-1]]] += 1  # the forward transition on a run's first frame (Kaldi's reordered HMMs)
        out[f"{prefix}{i % 2}-{prefix}{i:02d}"] = (x, y, tids, " ".join(f"w{p}" for p in seq))
    return out


def write_syn_data(d, utts):
    from kdhybrid.io.tables import MatrixWriter

    d.mkdir(parents=True)
    with MatrixWriter(d / "feats.ark", d / "feats.scp") as w:
        for u in sorted(utts):
            w.write(u, utts[u][0])
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in sorted(utts)))
    spk = sorted({u.split("-")[0] for u in utts})
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(u for u in sorted(utts) if u.startswith(s + '-'))}\n" for s in spk))
    (d / "text").write_text("".join(f"{u} {utts[u][3]}\n" for u in sorted(utts)))


def write_syn_cuts(d, utts):
    from lhotse import CutSet, MonoCut
    from lhotse.features.base import Features
    from lhotse.features.io import NumpyFilesWriter

    cuts = []
    with NumpyFilesWriter(d / "arrays") as w:
        for u in sorted(utts):
            x, y = utts[u][:2]
            info = w.store_array(f"f_{u}", x)
            feats = Features(type="fbank", num_frames=len(x), num_features=40, frame_shift=0.01, sampling_rate=16000, start=0,
                             duration=len(x) * 0.01, storage_type=info.storage_type, storage_path=info.storage_path,
                             storage_key=info.storage_key)
            cut = MonoCut(id=u, start=0, duration=len(x) * 0.01, channel=0, features=feats)
            cuts.append(cut.with_custom("pdf_ali", w.store_array(u, y.astype(np.int32), frame_shift=0.01, temporal_dim=0)))
    CutSet.from_cuts(cuts).to_file(d / "cuts.jsonl.gz")
    return d / "cuts.jsonl.gz"


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    """Data dirs, cuts, a lang dir, a tree dir (exp/mono), an ali dir of the true alignments,
    the unigram graph (graph/) and a CE model (exp/ce)."""
    import shutil

    from kdhybrid.decode.graph import make_hclg
    from kdhybrid.gmm.align import Lang
    from kdhybrid.gmm.train import init_mono
    from kdhybrid.io.tables import Int32VectorWriter
    from kdhybrid.lang.lang_dir import LangConfig, prepare_lang
    from kdhybrid.lang.ngram import format_lm, unigram_arpa
    from kdhybrid.train.trainer import TrainConfig, train

    d = tmp_path_factory.mktemp("syn")
    rng = np.random.default_rng(12)
    tr, dev = syn_utterances(rng, 16, "tr"), syn_utterances(rng, 6, "dv")
    write_syn_data(d / "data/train", tr)
    write_syn_data(d / "data/dev", dev)
    (d / "cuts").mkdir()
    cuts = write_syn_cuts(d / "cuts", tr)
    dd = d / "data/local/dict"
    dd.mkdir(parents=True)
    (dd / "silence_phones.txt").write_text("p0\n")
    (dd / "optional_silence.txt").write_text("p0\n")
    (dd / "nonsilence_phones.txt").write_text("".join(f"p{p}\n" for p in range(1, SYN_PDFS)))
    (dd / "lexicon.txt").write_text("".join(f"w{p} p{p}\n" for p in range(SYN_PDFS)))
    prepare_lang(dd, "w0", d / "data/lang", LangConfig(position_dependent_phones=False, num_sil_states=1, num_nonsil_states=1))
    tree = init_mono(Lang(d / "data/lang"), rng.standard_normal((50, 40)))
    tree.save(d / "exp/mono")
    ali = d / "exp/ali"
    ali.mkdir(parents=True)
    shutil.copy(d / "exp/mono/final.mdl", ali)
    with Int32VectorWriter(ali / "ali.1.gz") as w:
        for u in sorted(tr):
            w.write(u, tr[u][2].astype(np.int32))
    (d / "lm.txt").write_text("".join(tr[u][3] + "\n" for u in sorted(tr)))
    unigram_arpa(d / "lm.txt", d / "unigram.arpa")
    format_lm(d / "data/lang", d / "unigram.arpa", d / "data/lang_ug")
    make_hclg(d / "data/lang_ug", tree, d / "graph", model_dir=d / "exp/mono")
    cfg = TrainConfig.from_dict(dict(model=dict(arch="tdnn", num_pdfs=SYN_PDFS, hidden=32, num_layers=2, dropout=0.0), epochs=4,
                                     max_duration=1.0, lr=5e-3, warmup_steps=2, spec_augment=False, num_workers=0, threads=1, seed=3))
    train(cfg, cuts, cuts, d / "exp/ce")
    return d


def test_kaldi_numerator_without_the_reference_path():
    """skip_without_reference=False keeps a lattice that lacks the reference path with Kaldi's
    numerator (the alignment's acoustic score alone); frames where no arc has the reference
    pdf are dropped (no gradient), the others get numerator minus denominator posteriors."""
    import k2

    # frame 1 has pdf 3 only (reference pdf 2): no reference path
    ali = [5, 5, 9]
    arcs = [(0, 1, 5, -0.5), (0, 1, 1, -0.25), (1, 2, 7, 0.0), (2, 3, 9, -1.0), (2, 3, 3, 0.0), (3, 4, 0, -0.5)]
    lat = make_lattice(arcs, 5)
    vec = k2.create_fsa_vec([lat])
    assert prepare_batch(vec, ["u"], {"u": np.array(ali)}, PHONES)[1] == [("u", "no reference path in the lattice")]
    batch, skipped = prepare_batch(vec, ["u"], {"u": np.array(ali)}, PHONES, skip_without_reference=False)
    assert skipped == [] and batch.without_reference == ["u"]
    rng = np.random.default_rng(13)
    log_posts, log_priors = dyadic(rng, 1, 3, NUM_PDFS), dyadic(rng, NUM_PDFS, lo=-2.0)
    a = ACWT * (log_posts[0] - log_priors)
    pdfs = [[TIDS[t][0] for t in p] for p in ([5, 7, 9], [5, 7, 3], [1, 7, 9], [1, 7, 3])]
    graph = [-0.5 + 0 - 1.0 - 0.5, -0.5 + 0 + 0 - 0.5, -0.25 - 1.0 - 0.5, -0.25 - 0.5]
    scores = [g + sum(float(a[t, p]) for t, p in enumerate(ps)) for g, ps in zip(graph, pdfs)]
    den = logsumexp(scores)
    num = sum(float(a[t, TIDS[x][0]]) for t, x in enumerate(ali))
    r, g = objective(batch, log_posts, log_priors, SequenceConfig("mmi", acwt=ACWT, xent_regularize=0.0))
    assert float(r["objective"]) == pytest.approx(num - den, abs=1e-12)
    assert int(r["dropped_frames"]) == 1 and float(g[0, 1].abs().max()) == 0.0
    want = torch.zeros(3, NUM_PDFS, dtype=torch.float64)
    for s, ps in zip(scores, pdfs):
        for t, p in enumerate(ps):
            want[t, p] += math.exp(s - den)
    for t in (0, 2):
        want[t, TIDS[ali[t]][0]] -= 1.0
    torch.testing.assert_close(g[0, [0, 2]], want[[0, 2]], rtol=0, atol=1e-6)


def make_syn_denlats(syn, out, acwt=1.0):
    """Denominator lattices of the synthetic training data by the CE model, as
    kdhybrid.bin.make_denlats writes them (one job)."""
    from kdhybrid.decode.acoustic import load_scorer
    from kdhybrid.decode.denlats import make_den_lattices
    from kdhybrid.decode.k2_backend import load_k2_graph
    from kdhybrid.decode.lattice import save_lattices

    out.mkdir(parents=True)
    utts, lat, stats = make_den_lattices(load_scorer(syn / "exp/ce"), load_k2_graph(syn / "graph/HCLG.k2.pt"), syn / "data/train",
                                         acwt, 13.0, 7.0, 200, 5000, 2500)
    save_lattices(out / "lat.1.pt", utts, lat, acwt)
    (out / "denlats.json").write_text(json.dumps(dict(model=str(syn / "exp/ce"), num_pdfs=SYN_PDFS, num_transition_ids=2 * SYN_PDFS,
                                                      silence_phones=[1], num_jobs=1, acwt=acwt, beam=13.0, lattice_beam=7.0,
                                                      min_active=200, max_active=5000, graph_dir=str(syn / "graph"), **stats)))
    return out


def seq_cfg(criterion="smbr", epochs=2, **kw):
    from kdhybrid.train.sequence_trainer import SequenceTrainConfig

    # the toy network's posteriors are soft (max ~0.7 a frame): acoustic scale 1 here
    return SequenceTrainConfig(sequence=SequenceConfig(criterion, acwt=1.0, **kw), epochs=epochs, max_duration=1.5, lr=1e-3,
                               threads=1, seed=5)


def test_training_resumes_exactly_and_stops_on_divergence(syn, tmp_path, monkeypatch, caplog):
    """Kill after epoch 1 and resume == an uninterrupted run (that one logging its progress at
    every batch), weights and priors; a NaN objective stops naming the epoch and batch and keeps
    the last good checkpoint; lattices of another model are refused naming both pdf counts."""
    import logging
    import re

    import kdhybrid.train.sequence_trainer as st
    from kdhybrid.train.trainer import load_final

    den = make_syn_denlats(syn, tmp_path / "den")
    args = (syn / "cuts/cuts.jsonl.gz", syn / "exp/ali", den, syn / "exp/ce/final.pt")
    with caplog.at_level(logging.INFO):
        whole = st.train_sequence(seq_cfg(), *args, tmp_path / "whole", progress_seconds=0)
    done = [int(m.group(1)) for r in caplog.records for m in [re.match(r"epoch 1: batch (\d+) of (\d+), \d+ frames", r.getMessage())] if m]
    assert done and done == list(range(1, len(done) + 1))  # a line before every batch but the first
    st.train_sequence(seq_cfg(), *args, tmp_path / "killed", stop_after=1)
    assert not (tmp_path / "killed/final.pt").exists() and (tmp_path / "killed/epoch-1.pt").is_file()
    resumed = st.train_sequence(seq_cfg(), *args, tmp_path / "killed", resume=True)
    untimed = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert untimed(resumed["history"]) == untimed(whole["history"])
    a, b = torch.load(tmp_path / "whole/final.pt"), torch.load(tmp_path / "killed/final.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert torch.equal(a["log_priors"], b["log_priors"])
    h = whole["history"]
    assert h[0]["skipped_utts"] == 0 and h[0]["frames"] == 781 and 0 < h[0]["objective_per_frame"] < h[1]["objective_per_frame"] < 1
    model, priors, ck = load_final(tmp_path / "whole/final.pt")
    assert ck["criterion"] == "smbr" and abs(float(priors.exp().sum()) - 1) < 1e-5
    assert not torch.equal(priors, ck["src_log_priors"])
    # divergence in epoch 2
    calls, real = [0], st.sequence_objective

    def nan_on_call(n):
        def f(*a, **k):
            calls[0] += 1
            r = real(*a, **k)
            if calls[0] == n:
                r["loss"], r["objective"] = r["loss"] * float("nan"), r["objective"] * float("nan")
            return r
        return f

    per_epoch = h[0]["batches"]
    monkeypatch.setattr(st, "sequence_objective", nan_on_call(per_epoch + 2))
    with pytest.raises(st.DivergedError, match=r"epoch 2, batch 2: the smbr objective is nan .* last good checkpoint is .*epoch-1.pt"):
        st.train_sequence(seq_cfg(), *args, tmp_path / "nan")
    assert (tmp_path / "nan/epoch-1.pt").is_file() and not (tmp_path / "nan/epoch-2.pt").exists()
    assert not (tmp_path / "nan/final.pt").exists()
    monkeypatch.setattr(st, "sequence_objective", real)
    info = json.loads((den / "denlats.json").read_text())
    (den / "denlats.json").write_text(json.dumps(dict(info, num_pdfs=SYN_PDFS + 3)))
    with pytest.raises(ValueError, match=rf"with {SYN_PDFS + 3} pdfs, but .*final.pt has {SYN_PDFS} pdfs"):
        st.train_sequence(seq_cfg(), *args, tmp_path / "other")


def test_align_nnet_make_denlats_and_train_sequence_steps(syn, repo, venv_env, tmp_path):
    """The chain of steps on the synthetic task: steps/align_nnet.sh (the CE model's numerator
    alignments), steps/make_denlats.sh (2 jobs; a re-run finds it complete) and
    steps/train_sequence.sh (bMMI, dev WER each epoch); the result decodes like any model."""
    import subprocess

    from kdhybrid.decode.acoustic import load_scorer
    from kdhybrid.decode.denlats import DenLatticeStore
    from kdhybrid.gmm.train import read_alignments

    def run(*cmd):
        r = subprocess.run(["bash", *map(str, cmd)], cwd=repo, env=venv_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r.stdout

    ali, den, exp = tmp_path / "ali", tmp_path / "den", tmp_path / "bmmi"
    out = run("steps/align_nnet.sh", "--nj", 1, "--tree-dir", syn / "exp/mono", syn / "data/train", syn / "data/lang", syn / "exp/ce", ali)
    assert "aligned 16 utterances" in out and "0 failed" in out
    true, got = read_alignments(syn / "exp/ali"), read_alignments(ali)
    assert sorted(got) == sorted(true) and all((ali / f).is_file() for f in ("final.mdl", "tree", "final.pkl"))
    agree = sum(int((got[u] == true[u]).sum()) for u in true) / sum(len(a) for a in true.values())
    assert agree > 0.9
    denlats = ("steps/make_denlats.sh", "--nj", 2, "--acwt", 1.0, "--graph-dir", syn / "graph", syn / "data/train", syn / "data/lang",
               syn / "exp/ce", den)
    run(*denlats)
    info = json.loads((den / "denlats.json").read_text())
    assert (info["utts"], info["frames"], info["no_path"], info["num_pdfs"], info["num_transition_ids"]) == (16, 781, 0, SYN_PDFS, 24)
    assert info["silence_phones"] == [1] and info["arcs_per_frame"] > 3
    store = DenLatticeStore(den)
    assert len(store) == 16 and sorted(store.where) == sorted(true) and sorted({j for j, _ in store.where.values()}) == [0, 1]
    assert "is complete" in run(*denlats)
    # the training cuts must carry the numerator's pdfs: those of the true alignment are refused
    from kdhybrid.gmm.kaldi_model import read_transition_model
    from kdhybrid.io.datadir import iter_utterance_features
    from kdhybrid.train.sequence_trainer import train_sequence

    with pytest.raises(ValueError, match=r"utterance '.*': the cuts' labels are not the pdfs of .*ali \(cuts of another alignment"):
        train_sequence(seq_cfg(epochs=1), syn / "cuts/cuts.jsonl.gz", ali, den, syn / "exp/ce/final.pt", tmp_path / "refused")
    t2p = read_transition_model(ali / "final.mdl").tid2pdf
    (tmp_path / "cuts").mkdir()
    write_syn_cuts(tmp_path / "cuts", {u: (x, t2p[got[u]]) for u, x, _ in iter_utterance_features(syn / "data/train")})
    out = run("steps/train_sequence.sh", "--criterion", "bmmi", "--boost", 0.5, "--acwt", 1.0, "--epochs", 2, "--lr", 0.001,
              "--max-duration", 1.5, "--threads", 1, "--cuts", tmp_path / "cuts", "--dev-data", syn / "data/dev", "--graph-dir",
              syn / "graph", syn / "data/train", ali, den, syn / "exp/ce", exp)
    assert "train_sequence:" in out and "dev WER" in out
    h = json.loads((exp / "history.json").read_text())
    assert [x["epoch"] for x in h] == [1, 2] and all(0 <= x["dev_wer"] <= 100 for x in h)
    assert all(x["objective_per_frame"] < 0 for x in h) and h[1]["objective_per_frame"] > h[0]["objective_per_frame"]
    assert (exp / "sequence_curve.png").stat().st_size > 1000
    log = (exp / "log/train.log").read_text()
    assert '"dev_wer"' in log and "bmmi from" in log
    scorer = load_scorer(exp)
    assert scorer.num_pdfs == SYN_PDFS and "in memory" not in scorer.description


def test_lattices_rescored_by_their_model_and_skipped_utterances_named(syn, tmp_path, caplog):
    """The source model's scores put back on its own lattices reproduce them; the trainer skips
    an utterance without a lattice and one whose lattice lacks its (altered) reference, names
    each once in the log and counts them every epoch."""
    import logging
    import shutil

    from kdhybrid.decode.acoustic import iter_feature_batches, load_scorer
    from kdhybrid.decode.denlats import select
    from kdhybrid.decode.lattice import load_lattices, save_lattices
    from kdhybrid.gmm.train import read_alignments
    from kdhybrid.io.tables import Int32VectorWriter
    from kdhybrid.train.sequence_trainer import train_sequence

    den = make_syn_denlats(syn, tmp_path / "den")
    utts, lat, acwt = load_lattices(den / "lat.1.pt")
    scorer = load_scorer(syn / "exp/ce")
    ll = {u: s for b in iter_feature_batches(syn / "data/train") for u, s in zip(b[0], scorer.loglikes(b[1], b[2]))}
    pad = torch.zeros(len(utts), max(len(v) for v in ll.values()), SYN_PDFS, dtype=torch.float64)
    for i, u in enumerate(utts):
        pad[i, : len(ll[u])] = acwt * ll[u].double()
    stored = lat.scores.clone()
    rescore(lat, pad)
    torch.testing.assert_close(lat.scores, stored, rtol=0, atol=2e-5)
    # drop the first utterance's lattice; give the second a reference pdf its lattice lacks at frame 0
    save_lattices(den / "lat.1.pt", utts[1:], select(lat, range(1, len(utts))), acwt)
    ali = tmp_path / "ali"
    ali.mkdir()
    shutil.copy(syn / "exp/ali/final.mdl", ali)
    alis = read_alignments(syn / "exp/ali")
    at0 = {int(x) for x in lat[1].labels[lat[1].frame == 0].tolist()}  # pdf + 1 of the arcs at frame 0
    p = min(q for q in range(SYN_PDFS) if q + 1 not in at0)
    alis[utts[1]][0] = 2 * p + 2
    with Int32VectorWriter(ali / "ali.1.gz") as w:
        for u in sorted(alis):
            w.write(u, alis[u])
    with caplog.at_level(logging.WARNING, logger="kdhybrid.train"):
        r = train_sequence(seq_cfg(epochs=2), syn / "cuts/cuts.jsonl.gz", ali, den, syn / "exp/ce/final.pt", tmp_path / "exp")
    warned = [m for m in caplog.messages if m.startswith("skipping")]
    assert sorted(warned) == sorted([f"skipping {utts[0]}: no lattice", f"skipping {utts[1]}: no reference path in the lattice"])
    assert [h["skipped_utts"] for h in r["history"]] == [2, 2] and r["history"][0]["frames"] == 781 - len(ll[utts[0]]) - len(ll[utts[1]])


def test_bench_prints_both_cost_ratios(syn, tmp_path, capsys):
    from kdhybrid.bench.sequence import main

    den = make_syn_denlats(syn, tmp_path / "den")
    assert main(["--cuts", str(syn / "cuts"), "--ali", str(syn / "exp/ali"), "--denlats", str(den), "--model", str(syn / "exp/ce"),
                 "--max-duration", "1.5", "--batches", "3", "--warmup", "1", "--data", str(syn / "data/dev"), "--graph",
                 str(syn / "graph")]) == 0
    out = capsys.readouterr().out
    rec = json.loads(out[: out.rindex("}") + 1])
    assert rec["batches"] == 3 and rec["skipped_utts"] == 0 and rec["utts"] == 6
    assert rec["sequence_over_ce_time"] > 0 and rec["denlats_over_decode_time"] > 0
    assert "(goal <= 3)" in out and "(goal <= 1)" in out


def test_unigram_grammar_of_the_transcripts(tmp_path):
    """The denominator LM: each word's and </s>'s relative frequency in the transcripts (Kaldi's
    make_unigram_grammar.pl), a one-state G with those costs (kaldingram's own order 1 drops words)."""
    from kdhybrid.kaldi_libs import kaldifst, kaldilm
    from kdhybrid.lang.ngram import train_arpa

    (tmp_path / "t.txt").write_text("a b c\nb c d\na a b\n")
    assert train_arpa(tmp_path / "t.txt", 1, tmp_path / "u.arpa") == {"1": 6}
    probs = {w: 10 ** float(p) for p, w in (line.split("\t") for line in (tmp_path / "u.arpa").read_text().splitlines() if "\t" in line)}
    assert probs == pytest.approx({"<s>": 1e-99, "</s>": 3 / 12, "a": 3 / 12, "b": 3 / 12, "c": 2 / 12, "d": 1 / 12}, rel=1e-6)
    (tmp_path / "words.txt").write_text("<eps> 0\na 1\nb 2\nc 3\nd 4\n#0 5\n<s> 6\n</s> 7\n")
    kaldilm.arpa2fst(input_arpa=str(tmp_path / "u.arpa"), output_fst=str(tmp_path / "G.fst"), disambig_symbol="#0",
                     read_symbol_table=str(tmp_path / "words.txt"))
    g = kaldifst.StdVectorFst.read(str(tmp_path / "G.fst"))
    arcs = sorted(line.split() for line in str(g).strip().splitlines())
    assert g.num_states == 1 and [a[2] for a in arcs if len(a) > 2] == ["1", "2", "3", "4"]
    costs = {a[2]: float(a[4]) for a in arcs if len(a) > 2}
    assert costs == pytest.approx({"1": math.log(4), "2": math.log(4), "3": math.log(6), "4": math.log(12)}, abs=1e-4)
