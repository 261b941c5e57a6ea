"""GMM-HMM bootstrap on the tiny tier: monophone and triphone training through the recipe's
steps, Kaldi formats checked independently, and alignment quality against the synthesiser's
own phone timings (the test fails if alignments degrade)."""
import gzip
import json

import kaldi_native_io as kio
import numpy as np
import pytest
from conftest import ensure_small_graph

from kdhybrid.decode.lattice import DecodeResults
from kdhybrid.gmm.kaldi_model import read_transition_model
from kdhybrid.gmm.model import GmmHmm
from kdhybrid.gmm.train import read_alignments
from kdhybrid.gmm.tree import TidInfo, frame_contexts
from kdhybrid.io.tables import read_text_table


def test_exp_dirs_hold_what_kaldi_writes(gmm):
    d, _ = gmm
    for e in ("mono", "tri1", "tri1_ali"):
        for f in ("final.mdl", "tree", "num_jobs", "phones.txt", "cmvn_opts", "ali.1.gz"):
            assert (d / "exp" / e / f).is_file(), (e, f)
    # final.mdl is Kaldi's text model: our independent parser gets the same tables.
    m = GmmHmm.load(d / "exp/tri1")
    t = read_transition_model(d / "exp/tri1/final.mdl")
    np.testing.assert_array_equal(t.tid2pdf, m.tid2pdf())
    assert t.num_pdfs == m.num_pdfs == 200
    text = (d / "exp/tri1/final.mdl").read_text()
    assert text.startswith("<TransitionModel>") and f"<NUMPDFS> {m.num_pdfs}" in text and text.count("<DiagGMM>") == m.num_pdfs
    # The tree file is Kaldi's binary ContextDependency, with a triphone context.
    tree = (d / "exp/tri1/tree").read_bytes()
    assert tree.startswith(b"\0BContextDependency \x04\x03\x00\x00\x00\x04\x01\x00\x00\x00ToPdf TE ")
    assert m.tree.context_width == 3 and m.tree.central_position == 1
    # ali.N.gz: kaldi_native_io reads every entry; lengths equal the feature frames.
    n2f = {k: int(v) for k, v in read_text_table(d / "data/train/utt2num_frames").items()}
    seen = 0
    for j in range(1, int((d / "exp/tri1_ali/num_jobs").read_text()) + 1):
        raw = d / f"ali.{j}.ark"
        raw.write_bytes(gzip.decompress((d / f"exp/tri1_ali/ali.{j}.gz").read_bytes()))
        for k, v in kio.SequentialInt32VectorReader(f"ark:{raw}"):
            assert len(v) == n2f[k]
            assert 1 <= min(v) and max(v) <= m.tm.num_transition_ids
            seen += 1
    assert seen >= 0.85 * len(n2f)


def test_triphone_contexts_are_used(gmm):
    d, _ = gmm
    m = GmmHmm.load(d / "exp/tri1")
    info = TidInfo.of(m.tm)
    alis = read_alignments(d / "exp/tri1_ali")
    # Frames of one phone in different contexts land on different pdfs: the tree splits on context.
    pdfs_by_phone_state = {}
    for a in list(alis.values())[:50]:
        ctx = frame_contexts(a, info)
        for (l, c, r, pc), pdf in zip(ctx.tolist(), info.pdf[a].tolist()):
            pdfs_by_phone_state.setdefault((c, pc), set()).add(pdf)
    assert max(len(v) for v in pdfs_by_phone_state.values()) >= 2
    # Phones of the alignment spell the lexicon's pronunciation of the transcript (first word).
    tj = json.loads((d / "exp/tri1/train.json").read_text())
    assert tj["num_pdfs"] == 200 and tj["num_gauss"] > 1000
    assert tj["history"][-1]["like_per_frame"] > tj["history"][0]["like_per_frame"]


def test_alignment_quality_against_synthesiser_timings(gmm):
    """The floor: phone boundaries of tri1 against flite's and festival's own timings. GMM
    training is bit-reproducible (tests/test_gmm_reproducible.py), so these are fixed numbers
    of the tiny tier: measured 2026-12-01, flite mean 0.633, kal_diphone 0.867, all within
    20 ms 0.414; the floors are the ones first set (2026-11-21) with a margin for changes to
    the corpus or the training, not for run-to-run noise, of which there is none now."""
    d, _ = gmm
    r = json.loads((d / "exp/tri1_ali/boundaries.json").read_text())
    kal = r["per_voice"]["festival:kal_diphone"]
    flite = [r["per_voice"][v] for v in ("flite:kal16", "flite:slt", "flite:awb")]
    assert r["all"]["boundaries"] > 1500
    assert kal["within_50ms"] >= 0.70, kal
    assert np.mean([f["within_50ms"] for f in flite]) >= 0.60, flite
    assert r["all"]["within_20ms"] >= 0.35, r["all"]


def test_tri1_decodes_dev_better_than_chance(gmm):
    """tri1 through steps/decode.sh (k2 lattices) and Kaldi's scoring files: a WER far below
    100% proves graph, model and decoder fit together."""
    d, run = gmm
    g = ensure_small_graph(gmm)
    info = json.loads((g / "graph.json").read_text())
    assert info["num_pdfs"] == 200 and info["k2_arcs"] > 0 and (g / "HCLG.k2.pt").is_file()
    run("steps/decode.sh --nj 2 exp/tri1/graph_small data/dev exp/tri1/decode_small_dev")
    dd = d / "exp/tri1/decode_small_dev"
    w = json.loads((dd / "wer.json").read_text())
    best = (dd / "best_wer").read_text()
    assert best.startswith("%WER ") and f"[ {w['errors']} / {w['words']}," in best
    assert best.strip().endswith(f"wer_{w['lmwt']}_{w['penalty']}")
    wer_file = (dd / f"wer_{w['lmwt']}_{w['penalty']}").read_text().splitlines()
    assert best.startswith(wer_file[0] + " ") and wer_file[1].startswith("%SER ") and wer_file[2] == "Scored 50 sentences, 0 not present in hyp."
    assert len(w["grid"]) == 11 * 3 and min(w["grid"].values()) == w["wer"]
    assert w["sentences"] == 50 and w["wer"] < 95.0 and w["missing_utts"] == 0
    assert sorted(p.name for p in dd.glob("lat.*.pt")) == ["lat.1.pt", "lat.2.pt"]
    # scoring/LMWT.PENALTY.tra holds word ids of words.txt; hyp.txt the best setting's words.
    words = dict(l.split()[::-1] for l in (g / "words.txt").read_text().splitlines())
    tra = read_text_table(dd / "scoring" / f"{w['lmwt']}.{w['penalty']}.tra", min_fields=1)
    hyp = read_text_table(dd / "hyp.txt", min_fields=1)
    assert len(tra) == 50 and all(" ".join(words[i] for i in tra[u].split()) == hyp[u] for u in tra)
    # .txt: the same paths in words, at every setting (a test set is reported at dev's)
    assert (dd / "scoring" / f"{w['lmwt']}.{w['penalty']}.txt").read_text() == (dd / "hyp.txt").read_text()
    assert len(list((dd / "scoring").glob("*.txt"))) == len(w["grid"])


def test_gmm_scorer_matches_kaldi_log_likelihoods(gmm):
    """The decoder's vectorised float32 pdf log-likelihoods equal kaldi-hmm-gmm's own
    AmDiagGmm::LogLikelihood, frame by frame, for every pdf of tri1 on real dev features."""
    from kdhybrid.decode.acoustic import GmmScorer, iter_feature_batches

    d, _ = gmm
    scorer = GmmScorer(d / "exp/tri1")
    utts, feats, cmvn = next(iter_feature_batches(d / "data/dev", 400))
    x = scorer.pipeline(utts[0], feats[0], cmvn[0])[:40]
    ll = scorer.pdf_loglikes(x)
    assert ll.shape == (40, scorer.num_pdfs) and ll.dtype == np.float32
    am = scorer.model.am
    want = np.array([[am.log_likelihood(p, np.ascontiguousarray(f, dtype=np.float32)) for p in range(am.num_pdfs)] for f in x])
    np.testing.assert_allclose(ll, want, rtol=1e-5, atol=2e-3)
    assert scorer.pdf_loglikes(x[:0]).shape == (0, scorer.num_pdfs)


def test_k2_and_kaldi_backends_agree(gmm):
    """The same tri1 scores searched by k2 and by Kaldi's LatticeFasterDecoder (steps/decode.sh
    --backend kaldi) with the same beams: at the decoding's own weights (LMWT = 1/acwt) they
    find the same best words on all but at most one utterance (beam pruning differs in
    detail), with the same total score (graph + acwt * acoustic; float32 sums in Kaldi).
    Measured on the (now bit-reproducible) tiny tier: 50 of 50 the same, largest gap 0.005.
    The first 25 dev utterances are searched (Kaldi's decoder at beam 20 took most of the
    test's 200 s on all 50); a wrong acoustic scale, transition model or graph weight in
    either backend would move every utterance's score."""
    from kdhybrid.io.datadir import subset_data_dir

    d, run = gmm
    ensure_small_graph(gmm)
    dev = read_text_table(d / "data/dev/utt2spk")
    subset_data_dir(d / "data/dev", list(dev)[:25], d / "data/dev25")
    run("steps/decode.sh --nj 2 --beam 20 exp/tri1/graph_small data/dev25 exp/tri1/decode_small_dev25_b20")
    run("steps/decode.sh --nj 2 --backend kaldi --beam 20 exp/tri1/graph_small data/dev25 exp/tri1/decode_small_dev25_kaldi")
    k2_res = DecodeResults(d / "exp/tri1/decode_small_dev25_b20")
    kaldi_res = DecodeResults(d / "exp/tri1/decode_small_dev25_kaldi")
    a, b = k2_res.best_words(10, 0.0), kaldi_res.best_words(10, 0.0)
    sa, sb = k2_res.best_scores(10, 0.0), kaldi_res.best_scores(10, 0.0)
    assert sorted(a) == sorted(b) and len(a) == 25
    same = [u for u in a if a[u] == b[u]]
    assert len(same) >= 24, (len(same), {u: (sa[u], sb[u]) for u in a if a[u] != b[u]})
    gaps = {u: abs(sa[u] - sb[u]) for u in same}
    assert max(gaps.values()) < 0.05, max(gaps.items(), key=lambda x: x[1])
    # the scoring files hold the same best paths
    tra = read_text_table(d / "exp/tri1/decode_small_dev25_kaldi/scoring/10.0.0.tra", min_fields=1)
    assert all(tra[u].split() == [str(w) for w in b[u]] for u in b)
    assert list(d.glob("exp/tri1/decode_small_dev25_kaldi/nbest.*.json.gz"))
    wa = json.loads((d / "exp/tri1/decode_small_dev25_b20/wer.json").read_text())["grid"]["wer_10_0.0"]
    wb = json.loads((d / "exp/tri1/decode_small_dev25_kaldi/wer.json").read_text())["grid"]["wer_10_0.0"]
    assert abs(wa - wb) < 2.0


def test_lmrescore(gmm):
    """n-best rescoring. With the decoding LM itself the n-best holds, for every LM weight
    and penalty of the sweep, the word sequence that the lattice picks there, but each word
    sequence with one alignment: its best at the decoding's own weight (LMWT = 1/acwt = 10).
    So exactly this holds: at LMWT 10 the rescored choice is the lattice's best path; at any
    weight no hypothesis outscores the lattice's best path, and the choice differs from the
    lattice's only where the lattice's word sequence is best there on another alignment than
    the one the n-best kept (its n-best score falls short of the lattice's). A CI run had
    such utterances move the WER grid by 1.35 points at some weights. With a 4-gram it runs
    through the same scoring and records what it did."""
    from kdhybrid.decode.lattice import hyp_score

    d, run = gmm
    ensure_small_graph(gmm)
    if not (d / "exp/tri1/decode_small_dev/lat.1.pt").is_file():
        run("steps/decode.sh --nj 2 exp/tri1/graph_small data/dev exp/tri1/decode_small_dev")
    run("steps/lmrescore.sh --num-paths 20 data/lang_test_small data/lang_test_small data/dev exp/tri1/decode_small_dev exp/tri1/decode_small_dev_same")
    for pen in ("0.0", "0.5", "1.0"):  # at the decoding's LM weight: exactly the lattice's best paths
        a = read_text_table(d / f"exp/tri1/decode_small_dev/scoring/10.{pen}.tra", min_fields=1)
        b = read_text_table(d / f"exp/tri1/decode_small_dev_same/scoring/10.{pen}.tra", min_fields=1)
        assert a == b, pen
    lat = DecodeResults(d / "exp/tri1/decode_small_dev")
    nb = DecodeResults(d / "exp/tri1/decode_small_dev_same")
    nbest = {u: h for kind, _, obj in nb.parts for u, h in obj.items()}
    moved = 0
    for lmwt in range(7, 18):
        for pen in (0.0, 0.5, 1.0):
            lw, ls = lat.best_words(lmwt, pen), lat.best_scores(lmwt, pen)
            nw = nb.best_words(lmwt, pen)
            for u, words in lw.items():
                scores = {tuple(h[0]): hyp_score(h, nb.acwt, lmwt, pen) for h in nbest[u]}
                assert tuple(words) in scores, (u, lmwt, pen)  # the lattice's pick is in the n-best
                assert max(scores.values()) <= ls[u] + 1e-3, (u, lmwt, pen)  # every hypothesis is a lattice path
                if nw[u] != words:  # only where the lattice's pick is best on another alignment
                    assert scores[tuple(words)] < ls[u] - 1e-3, (u, lmwt, pen, scores[tuple(words)], ls[u])
                    moved += 1
                elif lmwt == 10:
                    assert abs(scores[tuple(words)] - ls[u]) < 1e-3
    ga = json.loads((d / "exp/tri1/decode_small_dev/wer.json").read_text())["grid"]
    gb = json.loads((d / "exp/tri1/decode_small_dev_same/wer.json").read_text())["grid"]
    assert ga.keys() == gb.keys() and (moved > 0 or ga == gb)
    run("steps/lmrescore.sh --num-paths 20 data/lang_test_small data/lang_test_small4 data/dev exp/tri1/decode_small_dev exp/tri1/decode_small_dev_fg")
    w = json.loads((d / "exp/tri1/decode_small_dev_fg/wer.json").read_text())
    assert w["rescore"]["new_lang"] == "data/lang_test_small4" and w["rescore"]["mean_hyps_per_utt"] > 1 and w["wer"] < 95.0


def test_decode_bad_input(gmm, tmp_path):
    """A model whose pdf count differs from the graph's, a data dir without features: errors
    that name the numbers / the file."""
    import shutil

    import torch

    from kdhybrid.nnet.models import ModelConfig, build_model
    from kdhybrid.train.trainer import save_final

    d, run = gmm
    ensure_small_graph(gmm)
    exp = d / "exp/bad_nnet"
    exp.mkdir(exist_ok=True)
    m = build_model(ModelConfig(arch="tdnn", feat_dim=40, num_pdfs=199, hidden=16, num_layers=2))
    save_final(exp / "final.pt", m, torch.zeros(199), {})
    err = run("python -m kdhybrid.bin.decode exp/tri1/graph_small data/dev exp/bad_nnet/decode_dev", fails=True)
    assert "model exp/bad_nnet has 199 pdfs but graph exp/tri1/graph_small was built for a transition model with 200 pdfs" in err
    nofeats = d / "data/dev_nofeats"
    shutil.copytree(d / "data/dev", nofeats, dirs_exist_ok=True, ignore=shutil.ignore_patterns("feats.scp", "split*"))
    err = run("python -m kdhybrid.bin.decode --model-dir exp/tri1 exp/tri1/graph_small data/dev_nofeats exp/tri1/decode_nofeats", fails=True)
    assert "data/dev_nofeats/feats.scp: missing, the data dir has no features" in err


def test_cuts_carry_senone_labels(gmm):
    from lhotse import CutSet

    from kdhybrid.data.cuts import make_cuts, pdf_alignments

    d, _ = gmm
    counts = make_cuts(d / "data/train", d / "data/cuts_test", d / "exp/tri1_ali")
    cuts = CutSet.from_file(d / "data/cuts_test/cuts.jsonl.gz")
    alis, num_pdfs = pdf_alignments(d / "exp/tri1_ali")
    assert counts["cuts"] == len(cuts) == len(alis) and num_pdfs == 200
    m = GmmHmm.load(d / "exp/tri1")
    raw = read_alignments(d / "exp/tri1_ali")
    for cut in list(cuts)[:20]:
        utt = cut.supervisions[0].id
        lab = cut.load_custom("pdf_ali")
        assert lab.shape == (cut.num_frames,) == (cut.load_features().shape[0],)
        np.testing.assert_array_equal(lab, m.tid2pdf()[raw[utt]])
        assert cut.load_custom("cmvn").shape == (2, 41)


def test_speed_perturbed_copies_are_aligned_again(gmm):
    """Kaldi's 3-way speed perturbation on real audio: 0.9/1.0/1.1 copies of a few training
    utterances get their own features (about 1/factor as many frames) and their own tri1
    alignments, made by aligning them again (never the original's labels stretched); the
    cuts name the copies that fail to align."""
    import json
    import shutil

    from kdhybrid.io.datadir import subset_data_dir
    from kdhybrid.io.tables import read_text_table

    d, run = gmm
    for x in ("data/sp_src", "data/sp", "exp/tri1_ali_sp", "data/cuts_sp_test"):
        shutil.rmtree(d / x, ignore_errors=True)
    utts = list(read_text_table(d / "data/train/utt2spk"))[:6]
    subset_data_dir(d / "data/train", utts, d / "data/sp_src")
    run("steps/perturb_data_dir_speed_3way.sh data/sp_src data/sp && "
        "steps/make_fbank.sh --nj 1 data/sp exp/make_fbank/sp fbank_sp && steps/compute_cmvn_stats.sh data/sp exp/make_fbank/sp fbank_sp && "
        "steps/align.sh --nj 1 --beam 10 --retry-beam 100 data/sp data/lang exp/tri1 exp/tri1_ali_sp && "
        "python -m kdhybrid.bin.make_cuts --ali-dir exp/tri1_ali_sp data/sp data/cuts_sp_test")
    nf = {u: int(v) for u, v in read_text_table(d / "data/sp/utt2num_frames").items()}
    orig = {u: int(v) for u, v in read_text_table(d / "data/train/utt2num_frames").items()}
    assert len(nf) == 18
    for u in utts:
        assert abs(nf[f"sp1.0-{u}"] - orig[u]) <= 1
        for f in (0.9, 1.1):
            assert abs(nf[f"sp{f}-{u}"] - orig[u] / f) <= 3, (u, f)
    alis = read_alignments(d / "exp/tri1_ali_sp")
    info = json.loads((d / "data/cuts_sp_test/make_cuts.json").read_text())
    left_out = (d / "data/cuts_sp_test/without_alignment.txt").read_text().split()
    assert sorted(left_out) == sorted(set(nf) - set(alis)) and len(alis) >= 15
    for u, a in alis.items():
        assert len(a) == nf[u]
    assert info["without_alignment"] == len(left_out) and info["cuts"] == len(alis)


def _kaldi_binary_transition_model(m: GmmHmm, extended: bool) -> bytes:
    """Encode a model's transition model as Kaldi's TransitionModel::Write(binary) does
    (HmmTopology::Write: phones, phone2idx, [-1 for the extended format], entries;
    then <Tuples>, <LogProbs>), from kaldi-hmm-gmm's own objects."""
    import struct

    tok = lambda s: s.encode() + b" "
    i32 = lambda v: b"\x04" + struct.pack("<i", v)
    f32 = lambda v: b"\x04" + struct.pack("<f", v)
    ivec = lambda v: b"\x04" + struct.pack("<i", len(v)) + struct.pack(f"<{len(v)}i", *v)
    phones = sorted(m.topo.phones)
    entries, phone2idx = [], [-1] * (max(phones) + 1)
    for p in phones:
        e = [(s.forward_pdf_class, s.self_loop_pdf_class, list(s.transitions)) for s in m.topo.topology_for_phone(p)]
        if e not in entries:
            entries.append(e)
        phone2idx[p] = entries.index(e)
    out = b"\0B" + tok("<TransitionModel>") + tok("<Topology>") + ivec(phones) + ivec(phone2idx)
    if extended:
        out += i32(-1)
    out += i32(len(entries))
    for e in entries:
        out += i32(len(e))
        for fpc, slpc, trans in e:
            out += i32(fpc) + (i32(slpc) if extended else b"") + i32(len(trans))
            for dest, prob in trans:
                out += i32(dest) + f32(prob)
    out += tok("</Topology>") + tok("<Tuples>") + i32(len(m.tm.tuples))
    for t in m.tm.tuples:
        out += b"".join(i32(x) for x in t.__getstate__())
    out += tok("</Tuples>") + tok("<LogProbs>") + b"FV " + b"\x04" + struct.pack("<i", 0) + tok("</LogProbs>") + tok("</TransitionModel>")
    return out


@pytest.mark.parametrize("extended", [False, True])
def test_binary_kaldi_models_are_read(gmm, tmp_path, extended):
    """A Kaldi ali dir's final.mdl is binary by default: its transition tables are read and
    equal kaldi-hmm-gmm's own (C++) tables."""
    d, _ = gmm
    m = GmmHmm.load(d / "exp/tri1")
    p = tmp_path / "final.mdl"
    p.write_bytes(_kaldi_binary_transition_model(m, extended))
    t = read_transition_model(p)
    np.testing.assert_array_equal(t.tid2pdf, m.tid2pdf())
    np.testing.assert_array_equal(t.tid2phone, m.tid2phone())
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"final.mdl: at byte \d+"):
        read_transition_model(p)


def test_k2_best_path_matches_kaldi_decoder(gmm):
    """The HCLG in k2 (epsilons removed, pdf+1 labels, transition-ids kept) decodes the same
    scores to the same best path as Kaldi's LatticeFasterDecoder: words, transition-ids
    and total score; up to a tie: two transition-ids of one frame with the same pdf
    (tied states) and the same total score (seen on 1 of these 6 utterances: 2 frames)."""
    import torch

    from kdhybrid.decode.k2_backend import decode, hclg_to_k2
    from kdhybrid.gmm.feats import GmmFeatConfig, iter_gmm_features
    from kdhybrid.gmm.model import gmm_loglikes
    from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg
    from kdhybrid.kaldi_libs import kaldifst

    d, run = gmm
    ensure_small_graph(gmm)
    m = GmmHmm.load(d / "exp/tri1")
    t2p = m.tid2pdf()
    hclg = kaldifst.StdVectorFst.read(str(d / "exp/tri1/graph_small/HCLG.fst"))
    graph = hclg_to_k2(hclg, t2p)
    acwt = 0.1
    scores = []
    for _, f in list(iter_gmm_features(d / "data/dev", GmmFeatConfig()))[:6]:
        out = np.zeros((len(f), m.num_pdfs), np.float32)
        for p in range(m.num_pdfs):
            ll = gmm_loglikes(m.am.get_pdf(p), f.astype(np.float64))
            mx = ll.max(1)
            out[:, p] = mx + np.log(np.exp(ll - mx[:, None]).sum(1))
        scores.append(acwt * out)
    k2_res = decode(graph, [torch.from_numpy(s) for s in scores], search_beam=30, output_beam=8)
    cfg = khg.LatticeFasterDecoderConfig()
    cfg.beam = 30
    cfg.max_active = 10000
    dec = khg.LatticeFasterDecoderStdVectorFst(hclg, cfg)
    ties = 0
    for i, (s, (words, score, tids)) in enumerate(zip(scores, k2_res)):
        ok, ali, wids, like = khg.decode_utterance_lattice_faster(dec, khg.DecodableCtc(s[:, t2p[1:]].copy()), m.tm, f"u{i}", True)
        assert ok and words == list(wids) and len(tids) == len(ali)
        assert [t2p[t] for t in tids] == [t2p[t] for t in ali]
        assert abs(score - like) < 1e-2 * max(1.0, abs(like) / 1000)
        ties += sum(a != b for a, b in zip(tids, ali))
    assert ties <= 4, ties
