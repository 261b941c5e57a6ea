"""LM-to-AM distillation (Lee & Chang) on hand-made tiny inputs: a toy lexicon and lang dir, a
hand-written triphone tree (one phone whose three states share a pdf, others split on their
neighbours), alignments built state by state or by Kaldi's graph compiler.

Deduplication then expansion gives back the alignment, with adjacent instances of one label
kept apart; a hand-written bigram gives frame targets computed by hand; targets are causal
and do not depend on the batch; the subword split keeps every frame; the senone expansion of
a transcript matches its alignment on non-silence phones; the dump round-trips through
kaldi_native_io and the trainer's soft-label loader; with every head weight 0 the loss and
gradients are the baseline's bit for bit."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kdhybrid.distill.objectives import DistillConfig, LmHeadsConfig, interpolation_targets, lm_head_name, lm_heads_loss, soft_ce, student_loss
from kdhybrid.gmm.align import Lang, equal_align, graph_compiler
from kdhybrid.gmm.model import GmmHmm
from kdhybrid.gmm.tree import PDF_CLASS_KEY, Node, TidInfo, context_dependency_from_bytes, phone_instances, tree_to_kaldi
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg
from kdhybrid.lang.lang_dir import prepare_lang
from kdhybrid.lm.lstm import LstmLm, LstmLmConfig, perplexity, train_lstm_lm, unit_lm_perplexity
from kdhybrid.lm.ngram import ArpaUnitLm, ngram_perplexity, train_unit_ngram
from kdhybrid.lm.posteriors import LmDumpConfig, finish_lm_dump, frame_posterior, instance_targets, lm_dump_job
from kdhybrid.lm.units import (
    LangInfo,
    MonophonePipeline,
    SenoneMap,
    SenonePipeline,
    SilenceRates,
    SubwordPipeline,
    UnitInstances,
    UnitInventory,
    estimate_silence_rates,
    phone_unit_instances,
    senone_instances,
    silence_flags,
    split_word_frames,
    subword_instances,
    word_phones,
)

LEXICON = """!SIL SIL
<UNK> SPN
A AH
ABOUT AH B AW T
CAT K AE T
TAT T AE T
THE DH AH
"""


class Toy:
    """A lang dir, a hand-written tree, its transition model and helpers to align."""

    def __init__(self, d: Path):
        dd = d / "dict"
        dd.mkdir(parents=True)
        (dd / "lexicon.txt").write_text(LEXICON)
        phones = sorted({p for line in LEXICON.splitlines() for p in line.split()[1:]} - {"SIL", "SPN"})
        (dd / "nonsilence_phones.txt").write_text("".join(p + "\n" for p in phones))
        (dd / "silence_phones.txt").write_text("SIL\nSPN\n")
        (dd / "optional_silence.txt").write_text("SIL\n")
        prepare_lang(dd, "<UNK>", d / "lang")
        self.lang_dir = d / "lang"
        self.L = Lang(self.lang_dir)
        self.lang = LangInfo.from_dir(self.lang_dir)
        self.id = self.lang.phones
        self.name = self.lang.phone_names
        self.topo = self.L.topo()
        roots = [[int(x) for x in line.split()[2:]] for line in (self.lang_dir / "phones/roots.int").read_text().splitlines()]
        self.tree = context_dependency_from_bytes(tree_to_kaldi(self._hand_tree(roots), roots, max(self.id.values())))
        self.tm = khg.TransitionModel(ctx_dep=self.tree, hmm_topo=self.topo)
        self.info = TidInfo.of(self.tm)
        self.compiler = graph_compiler(GmmHmm(self.topo, self.tree, self.tm, None), self.L)

    def _hand_tree(self, roots):
        """AH: one pdf for all states and contexts. SIL, SPN: a pdf per state. Other phones:
        state 0 one pdf, state 1 split on the left phone being silence (or none), state 2 on
        the right phone."""
        count = [0]
        sil = sorted(self.lang.silence | {0})

        def leaf():
            n = Node(np.zeros(0, np.int64), pdf=count[0])
            count[0] += 1
            return n

        def split(key, yes_set, yes, no):
            return Node(np.zeros(0, np.int64), key=key, yes_set=list(yes_set), yes=yes, no=no)

        out = {}
        for r, phones in enumerate(roots):
            base = self.name[phones[0]].split("_")[0]
            if base == "AH":
                out[r] = leaf()
                continue
            if base in ("SIL", "SPN"):
                per_class = [leaf() for _ in range(5)]
            else:
                per_class = [leaf(), split(0, sil, leaf(), leaf()), split(2, sil, leaf(), leaf())]
            node = per_class[-1]
            for c in range(len(per_class) - 2, -1, -1):
                node = split(PDF_CLASS_KEY, [c], per_class[c], node)
            out[r] = node
        self.num_pdfs = count[0]
        return out

    def pdf(self, left: int, phone: int, right: int, state: int) -> int:
        ok, p = self.tree.compute([left, phone, right], state)
        assert ok
        return p

    def tid(self, phone: int, state: int, pdf: int, dest: int) -> int:
        """The transition-id of (phone, HMM state, pdf) to HMM state ``dest``."""
        trans = self.topo.topology_for_phone(phone)[state].transitions
        index = [d for d, _ in trans].index(dest)
        i = self.info
        (t,) = np.flatnonzero((i.phone == phone) & (i.hmm_state == state) & (i.pdf == pdf) & (i.trans_index == index))
        return int(t)

    def build_alignment(self, spec):
        """An alignment from [(phone name, [(HMM state, frames), ...]), ...], with transition-ids
        as Kaldi's reordered graphs give them (a state's transition out first, then its self-loops).
        Returns (ali (T,) int32, [(phone id, [(pdf, frames), ...]), ...])."""
        phones = [self.id[p] for p, _ in spec]
        ali, truth = [], []
        for n, (p, path) in enumerate(spec):
            c = phones[n]
            left = phones[n - 1] if n else 0
            right = phones[n + 1] if n + 1 < len(phones) else 0
            final = len(self.topo.topology_for_phone(c)) - 1
            states = []
            for j, (s, d) in enumerate(path):
                dest = path[j + 1][0] if j + 1 < len(path) else final
                pdf = self.pdf(left, c, right, s)
                ali += [self.tid(c, s, pdf, dest)] + [self.tid(c, s, pdf, s)] * (d - 1)
                states.append((pdf, d))
            truth.append((c, states))
        return np.asarray(ali, np.int32), truth

    def align_text(self, words, num_frames, seed):
        g = self.compiler.compile_graph_from_text(self.L.word_ids(words))
        a = equal_align(g, num_frames, seed)
        assert a is not None
        return np.asarray(a, np.int32)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return Toy(tmp_path_factory.mktemp("lm_toy"))


class Letters:
    """A hand-made word segmenter: pieces of at most two letters, ids from a fixed list."""

    def __init__(self, words):
        self.names = sorted({w[i : i + 2] for w in words for i in range(0, len(w), 2)})

    def word_pieces(self, word):
        pieces = [word[i : i + 2] for i in range(0, len(word), 2)]
        return [self.names.index(p) for p in pieces], [len(p) for p in pieces]


# --------------------------------------------------------------------- deduplication


def test_deduplication_then_expansion_gives_back_the_alignment(toy):
    # "A A CAT TAT" with silence: AH_S AH_S (one pdf for all six states: equal labels
    # throughout), T_E T_B (the same monophone twice), silence through its ergodic states.
    spec = [
        ("SIL", [(0, 2), (3, 1), (2, 2), (3, 1), (4, 1)]),
        ("AH_S", [(0, 1), (1, 2), (2, 1)]),
        ("AH_S", [(0, 2), (1, 1), (2, 3)]),
        ("K_B", [(0, 1), (1, 1), (2, 2)]),
        ("AE_I", [(0, 3), (1, 1), (2, 1)]),
        ("T_E", [(0, 1), (1, 1), (2, 1)]),
        ("T_B", [(0, 2), (1, 1), (2, 1)]),
        ("AE_I", [(0, 1), (1, 1), (2, 1)]),
        ("T_E", [(0, 1), (1, 2), (2, 2)]),
        ("SIL", [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2)]),
    ]
    ali, truth = toy.build_alignment(spec)
    info = toy.info
    sen = senone_instances(ali, info)
    want = [pd for _, states in truth for pd in states]
    assert sen.units.tolist() == [p for p, _ in want]
    assert sen.lengths.tolist() == [d for _, d in want]
    np.testing.assert_array_equal(sen.expand(len(ali)), info.pdf[ali])
    # the two AH_S instances are six senone instances of one pdf: merging equal labels would give one
    ah = toy.pdf(0, toy.id["AH_S"], 0, 0)
    assert sen.units[5:11].tolist() == [ah] * 6 and (info.pdf[ali][7:17] == ah).all() and info.pdf[ali][17] != ah

    table = toy.lang.monophone_table()
    mono = phone_unit_instances(ali, info, table)
    names = toy.lang.monophones
    assert [names[u] for u in mono.units] == ["SIL", "AH", "AH", "K", "AE", "T", "T", "AE", "T", "SIL"]
    assert mono.lengths.tolist() == [sum(d for _, d in path) for _, path in spec]
    np.testing.assert_array_equal(mono.expand(len(ali)), table[info.phone[ali]])
    assert len(np.flatnonzero(np.diff(mono.expand(len(ali))))) + 1 == len(mono) - 2  # two pairs of equal neighbours

    # Alignments from Kaldi's graph compiler (random paths, optional silence) round-trip too.
    for seed, words in enumerate([["A", "A", "THE"], ["ABOUT", "CAT", "TAT", "A"], ["ZEBRA", "THE", "CAT"]]):
        a = toy.align_text(words, 45, seed)
        for inst, labels in ((senone_instances(a, info), info.pdf[a]), (phone_unit_instances(a, info, table), table[info.phone[a]])):
            np.testing.assert_array_equal(inst.expand(len(a)), labels)
            assert inst.starts[0] == 0 and (inst.starts[1:] == inst.ends[:-1]).all() and inst.ends[-1] == len(a)


def test_senone_expansion_of_a_transcript_matches_its_alignment(toy):
    """words -> lexicon -> phones with silence where the alignment has it -> the tree's pdfs,
    canonical states: equal to the alignment's senone instances on every non-silence phone."""
    senones = SenoneMap(toy.tree, toy.lang.num_pdf_classes)
    assert senones.num_pdfs == toy.num_pdfs
    checked = 0
    for seed, words in enumerate([["A", "A", "THE"], ["ABOUT", "CAT", "TAT", "A"], ["THE", "ZEBRA", "CAT", "A"], ["TAT"]]):
        ali = toy.align_text(words, 60, seed + 7)
        phones, pstarts = phone_instances(ali, toy.info)
        flags = silence_flags(phones, toy.lang)
        expanded = word_phones(words, toy.lang, flags)
        assert expanded == phones.tolist()
        seq = senones.sequence(expanded)
        inst = senone_instances(ali, toy.info)
        # group both by phone instance
        per_phone_text, i = [], 0
        for p in expanded:
            n = toy.lang.num_pdf_classes[p]
            per_phone_text.append(seq[i : i + n].tolist())
            i += n
        assert i == len(seq)
        phone_of_inst = np.searchsorted(pstarts, inst.starts, side="right") - 1
        for k, p in enumerate(phones.tolist()):
            if p in toy.lang.silence:
                continue
            assert inst.units[phone_of_inst == k].tolist() == per_phone_text[k], (words, toy.name[p])
            checked += 1
    assert checked >= 20
    # the tree's contexts matter: K_B after silence and after a vowel have different pdfs
    assert toy.pdf(toy.id["SIL"], toy.id["K_B"], toy.id["AE_I"], 1) != toy.pdf(toy.id["AH_S"], toy.id["K_B"], toy.id["AE_I"], 1)


def test_silence_rates_and_lm_text(toy):
    L, sil = toy.lang, toy.lang.optional_silence
    p = lambda *names: [toy.id[n] for n in names]  # noqa: E731
    seqs = [p("SIL", "AH_S", "SIL", "DH_B", "AH_E"), p("AH_S", "AH_S", "SIL"), p("SIL", "T_B", "AE_I", "T_E", "SIL", "AH_S", "SIL")]
    assert silence_flags(seqs[0], L) == [True, True, False]
    r = estimate_silence_rates(seqs, L)
    assert (r.begin, r.between, r.end) == (2 / 3, 2 / 3, 2 / 3)
    assert word_phones(["A", "ZEBRA"], L, [False, True, True]) == [toy.id["AH_S"], sil, toy.id["SPN_S"], sil]
    rng = np.random.default_rng(0)
    mono = MonophonePipeline(L, SilenceRates(1.0, 0.0, 1.0))
    assert [L.monophones[u] for u in mono.text_units(["THE", "CAT"], rng)] == ["SIL", "DH", "AH", "K", "AE", "T", "SIL"]
    senone = SenonePipeline(L, SilenceRates(0.0, 0.0, 0.0), SenoneMap(toy.tree, L.num_pdf_classes))
    assert senone.text_units(["A"], rng).tolist() == [toy.pdf(0, toy.id["AH_S"], 0, 0)] * 3


# --------------------------------------------------------------------- subwords


def test_subword_split_keeps_every_frame(toy):
    # by hand: along phone boundaries in proportion to letters; more pieces than phones: frames
    assert split_word_frames([3, 2, 4, 1], [2, 2]).tolist() == [5, 5]
    assert split_word_frames([3, 2, 4, 1], [1, 3]).tolist() == [3, 7]
    assert split_word_frames([3, 2, 4, 1], [5, 0, 1]).tolist() == [5, 4, 1]  # letters 0 count as 1
    assert split_word_frames([4, 4], [1, 1, 1, 1]).tolist() == [2, 2, 2, 2]
    assert split_word_frames([1, 1], [1, 1, 1]).tolist() == [0, 1, 1]
    rng = np.random.default_rng(3)
    for _ in range(300):
        lens = rng.integers(1, 6, rng.integers(1, 7))
        letters = rng.integers(0, 5, rng.integers(1, 9))
        f = split_word_frames(lens, letters)
        assert f.sum() == lens.sum() and (f >= 0).all() and len(f) == len(letters)
        if len(letters) <= len(lens):  # every piece at least one phone, boundaries on phone boundaries
            assert set(np.cumsum(f).tolist()) <= set(np.cumsum(lens).tolist()) and (f > 0).all()
        elif lens.sum() >= len(letters):
            assert (f > 0).all()

    words = ["ABOUT", "CAT", "ZEBRA", "A", "TAT"]
    seg = Letters(words + ["THE"])
    for seed in range(3):
        ali = toy.align_text(words, 70, seed)
        inst = subword_instances(ali, toy.info, words, toy.lang, seg)
        assert [seg.names[u] for u in inst.units] == ["AB", "OU", "T", "CA", "T", "ZE", "BR", "A", "A", "TA", "T"]
        fi = inst.frame_instance(len(ali))
        phone = toy.info.phone[ali]
        in_word = ~np.isin(phone, sorted(toy.lang.silence))  # SIL between words and ZEBRA's SPN: no target
        np.testing.assert_array_equal(fi >= 0, in_word)
        assert inst.lengths[5:8].tolist() == [0, 0, 0]  # the OOV word's pieces: in the history, no frames
        assert (inst.lengths[[0, 1, 2, 3, 4, 8, 9, 10]] > 0).all()
        assert inst.lengths.sum() == in_word.sum()


def test_sentencepiece_subword_model(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    from kdhybrid.lm.units import train_subword_model

    rng = np.random.default_rng(0)
    vocab = ["THE", "CAT", "CATS", "ABOUT", "A", "DOG", "DOGS", "RED", "READ", "READER", "TAT"]
    (tmp_path / "text").write_text("".join(" ".join(rng.choice(vocab, 6)) + "\n" for _ in range(300)))
    sp = train_subword_model(tmp_path / "text", tmp_path / "sp", vocab_size=30)
    assert sp.names[0] == "<unk>" and 12 <= len(sp.names) <= 30 and spm.__version__  # a soft limit: tiny text, fewer pieces
    ids, letters = sp.word_pieces("READERS")
    assert "".join(sp.names[i] for i in ids).replace("\u2581", "") == "READERS" and sum(letters) == 7
    pipe = SubwordPipeline(None, sp, sp.names)
    assert len(pipe.text_units(["THE", "CAT"], rng)) >= 2


# --------------------------------------------------------------------- LM targets

BIGRAM = """\\data\\
ngram 1=5
ngram 2=10

\\1-grams:
-99\t<s>\t0
{a}\ta\t0
{b}\tb\t-99
{c}\tc\t{bow_c}
{e}\t</s>

\\2-grams:
{sa}\t<s> a
{sb}\t<s> b
{sc}\t<s> c
{se}\t<s> </s>
{aa}\ta a
{ab}\ta b
{ac}\ta c
{ae}\ta </s>
{ba}\tb a
{cb}\tc b

\\end\\
"""


def write_bigram(path):
    """p(.|<s>) = a .4 b .4 c .1 </s> .1; p(.|a) = a .1 b .6 c .2 </s> .1; p(a|b) = 1 (backoff weight 0);
    after c only (c, b) = .5 is listed: the rest backs off to the unigrams a .3 b .3 c .2
    </s> .2 with weight .5 / (1 - .3) (a proper distribution)."""
    lg = lambda x: f"{np.log10(x):.10f}"  # noqa: E731
    path.write_text(BIGRAM.format(
        a=lg(0.3), b=lg(0.3), c=lg(0.2), e=lg(0.2), bow_c=lg(0.5 / 0.7),
        sa=lg(0.4), sb=lg(0.4), sc=lg(0.1), se=lg(0.1), aa=lg(0.1), ab=lg(0.6), ac=lg(0.2), ae=lg(0.1), ba=lg(1.0), cb=lg(0.5),
    ))  # fmt: skip
    return path


def test_hand_made_bigram_gives_frame_targets_by_hand(tmp_path):
    inv = UnitInventory("monophone", ["a", "b", "c"])
    lm = ArpaUnitLm(write_bigram(tmp_path / "bigram.arpa"), inv)
    # instances a a c a b with frames 2, 1, 2, (gap of 2 frames: no target), 1, 1
    inst = UnitInstances([0, 0, 2, 0, 1], [0, 2, 3, 7, 8], [2, 3, 5, 8, 9])
    (lp,) = lm.next_unit_logprobs([inst.units])
    assert lp.shape == (6, 4)
    np.testing.assert_allclose(np.exp(lp.astype(np.float64)).sum(1), 1.0, rtol=1e-6)
    ids, probs = instance_targets(lp, len(inst), topk=2)
    post = frame_posterior(inst, ids, probs, num_frames=10)
    # renormalised without </s>: after <s>: a 4/9 b 4/9 c 1/9 (the tie by unit id);
    # after a: b 2/3 c 2/9 a 1/9; after c: b .5/(6/7) = 7/12, a 3/14/(6/7) = 1/4, c 1/6
    s = [(0, 4 / 9), (1, 4 / 9)]
    after_a = [(1, 2 / 3), (2, 2 / 9)]
    after_c = [(1, 7 / 12), (0, 1 / 4)]
    want = [s, s, after_a, after_a, after_a, [], [], after_c, after_a, []]
    got = post.to_list()
    assert [[i for i, _ in f] for f in got] == [[i for i, _ in f] for f in want]
    np.testing.assert_allclose([p for f in got for _, p in f], [p for f in want for _, p in f], rtol=1e-6)
    # all units (topk 0): rows sum to one
    ids, probs = instance_targets(lp, len(inst), topk=0)
    assert ids.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    # perplexity from the rows equals kaldingram's for the same ARPA file (by hand: the empty
    # sentence skipped, (.4 * .6 * 1 * .2 / 7 * .1 * 3 / 14 * .1) ** (-1 / 8))
    seqs = [np.array([0, 1, 0, 2]), np.array([2, 0]), np.array([], np.int64)]
    ppl = unit_lm_perplexity(lm, seqs)
    by_hand = (0.4 * 0.6 * 1 * 0.2 / 7 * 0.1 * 3 / 14 * 0.1) ** (-1 / 8)
    assert ppl["ppl"] == pytest.approx(by_hand, abs=1e-3) and ppl["tokens"] == 8
    assert ngram_perplexity(tmp_path / "bigram.arpa", seqs, inv)["ppl"] == pytest.approx(by_hand, abs=0.01)  # kaldingram rounds to 0.01


def test_targets_are_causal_and_do_not_depend_on_the_batch(tmp_path):
    torch.manual_seed(0)
    lstm = LstmLm(5, LstmLmConfig(embed_dim=8, hidden_dim=16, dropout=0.0))
    inv = UnitInventory("monophone", ["a", "b", "c"])
    bigram = ArpaUnitLm(write_bigram(tmp_path / "bigram.arpa"), inv)
    cases = [(lstm, [1, 3, 0, 2, 4, 4], [1, 3, 0, 4, 0, 1]), (bigram, [0, 1, 0, 2, 0], [0, 1, 0, 1, 2])]
    for lm, x, y in cases:
        x, y = np.array(x), np.array(y)
        m = 3  # the sentences share their first 3 units: instances 0..3 have the same history
        (lx,), (ly,) = lm.next_unit_logprobs([x]), lm.next_unit_logprobs([y])
        tx, ty = instance_targets(lx, len(x), 0), instance_targets(ly, len(y), 0)
        for a, b in zip(tx, ty):
            np.testing.assert_array_equal(a[: m + 1], b[: m + 1])  # bit for bit
        assert not np.array_equal(tx[1][m + 1], ty[1][m + 1])
    # a longer continuation: the same up to float rounding (the output layer's matrix product
    # has more rows), far below what a look-ahead would change
    x, y = np.array([1, 3, 0, 2]), np.array([1, 3, 0, 4, 0, 1, 2, 2, 3, 1, 0])
    (lx,), (ly,) = lstm.next_unit_logprobs([x]), lstm.next_unit_logprobs([y])
    np.testing.assert_allclose(lx[:4], ly[:4], rtol=0, atol=1e-6)
    assert np.abs(lx[4] - ly[4]).max() > 1e-3
    # scored alone or in a batch with longer and shorter sentences (packed, no padding leaks)
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, 5, n) for n in (7, 1, 0, 12, 3)]
    batched = lstm.next_unit_logprobs(seqs)
    for s, b in zip(seqs, batched):
        (alone,) = lstm.next_unit_logprobs([s])
        assert b.shape == (len(s) + 1, 6)
        np.testing.assert_allclose(b, alone, rtol=0, atol=1e-6)


def test_lstm_lm_beats_its_ngram_floor(tmp_path):
    """A toy unit language where the next unit is the one three back (plus noise): a bigram
    cannot see that far, a small LSTM can."""
    rng = np.random.default_rng(0)

    def sentence():
        s = list(rng.integers(0, 6, 3))
        for _ in range(int(rng.integers(6, 14))):
            s.append(s[-3] if rng.random() < 0.9 else int(rng.integers(0, 6)))
        return np.array(s)

    train, heldout = [sentence() for _ in range(300)], [sentence() for _ in range(40)]
    inv = UnitInventory("monophone", list("abcdef"))
    counts = train_unit_ngram(train, inv, 2, tmp_path / "floor.arpa")
    assert counts["1"] == 8  # 6 units, <s>, </s>
    floor = ngram_perplexity(tmp_path / "floor.arpa", heldout, inv)
    cfg = LstmLmConfig(embed_dim=16, hidden_dim=32, dropout=0.0, lr=1e-2, batch_tokens=400, max_epochs=6, max_seconds=60, threads=1)
    model, history = train_lstm_lm(train, heldout, len(inv), cfg, progress=False, name="toy")
    assert len(history) == 6 and history[0]["tokens"] == sum(len(s) + 1 for s in train)
    best = min(h["heldout_ppl"] for h in history)
    assert perplexity(model, heldout)["ppl"] == pytest.approx(best, rel=1e-6)
    assert unit_lm_perplexity(model, heldout)["ppl"] == pytest.approx(best, rel=1e-4)
    assert floor["oov"] == 0 and floor["ppl"] > 4.0
    assert best < 0.6 * floor["ppl"], (best, floor)


# --------------------------------------------------------------------- the dump


def test_lm_dump_round_trips_through_kaldi_native_io_and_the_trainer_loader(toy, tmp_path):
    import kaldi_native_io as kio

    from kdhybrid.train.data import BadCutError, load_soft_labels

    texts = {"u1": ["A", "A", "THE"], "u2": ["ABOUT", "ZEBRA", "CAT"], "u3": ["TAT"]}
    alis = {u: toy.align_text(w, 40 + 5 * i, i) for i, (u, w) in enumerate(texts.items())}
    seg = Letters(["ABOUT", "ZEBRA", "CAT", "A", "THE", "TAT"])
    pipes = {
        "monophone": MonophonePipeline(toy.lang, SilenceRates()),
        "subword": SubwordPipeline(toy.lang, seg, seg.names),
    }
    torch.manual_seed(0)
    for unit, pipe in pipes.items():
        lm = LstmLm(len(pipe.inventory), LstmLmConfig(embed_dim=8, hidden_dim=16, dropout=0.0))
        d = tmp_path / unit
        d.mkdir()
        cfg = LmDumpConfig(unit=unit, topk=4, batch_tokens=8)
        # job 1: u1 and u3, fitted to one frame more and one fewer; job 2: u2 and one without alignment
        s1 = lm_dump_job(["u1", "u3"], alis, texts, toy.info, pipe, lm, d, 1, cfg, num_frames={"u1": 41, "u3": 49})
        s2 = lm_dump_job(["u2", "nothing"], alis, texts, toy.info, pipe, lm, d, 2, cfg)
        assert (s1["utts"], s2["utts"], s2["without_alignment"]) == (2, 1, 1)
        info = finish_lm_dump(d, 2, cfg, "lm.pt", pipe.inventory)
        assert json.loads((d / "post.json").read_text()) == info
        assert info["K"] == 4 and info["num_units"] == len(pipe.inventory) and info["frames"] == 41 + 45 + 49
        assert UnitInventory.read(d / "units.txt") == pipe.inventory
        seen = {}
        for key, value in kio.SequentialPosteriorReader(f"scp:{d}/post.scp"):
            seen[key] = value
        assert sorted(seen) == ["u1", "u2", "u3"]
        for u, nf in (("u1", 41), ("u2", 45), ("u3", 49)):
            inst = pipe.instances(alis[u], toy.info, texts[u], u)
            (lp,) = lm.next_unit_logprobs([inst.units])
            ids, probs = instance_targets(lp, len(inst), 4)
            fi = inst.frame_instance(len(alis[u]))
            fi = np.concatenate([fi, fi[-1:]])[:nf]
            assert len(seen[u]) == nf
            for t, pairs in enumerate(seen[u]):
                if fi[t] < 0:
                    assert pairs == []
                    continue
                assert [i for i, _ in pairs] == ids[fi[t]].tolist()
                np.testing.assert_array_equal(np.float32([p for _, p in pairs]), probs[fi[t]])
            # the trainer's soft-label path: frames without a target are k pairs of probability 0
            from kdhybrid.io.posterior import PosteriorReader

            got_ids, got_p = load_soft_labels(PosteriorReader(d / "post.scp"), str(d / "post.scp"), u, nf, len(pipe.inventory),
                                              masked_k=4)
            assert got_ids.shape == (nf, 4)
            np.testing.assert_array_equal(got_p.sum(1) > 0, fi >= 0)
        if unit == "subword":
            assert info["masked_frames"] > 0
            with pytest.raises(BadCutError, match="same k"):  # only where the caller allows frames without a target
                load_soft_labels(PosteriorReader(d / "post.scp"), str(d / "post.scp"), "u2", 45, len(pipe.inventory))
            with pytest.raises(BadCutError, match="neither 3 pairs nor none"):
                load_soft_labels(PosteriorReader(d / "post.scp"), str(d / "post.scp"), "u2", 45, len(pipe.inventory), masked_k=3)
        else:
            assert info["masked_frames"] == 0


# --------------------------------------------------------------------- heads and interpolation


def _batch(num_pdfs, dims, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_pdfs, (2, 9), generator=g)
    labels[1, 6:] = -100
    soft = {}
    for u, v in dims.items():
        ids = torch.randint(0, v, (2, 9, 3), generator=g)
        probs = torch.rand(2, 9, 3, generator=g) / 3
        probs[1, 6:] = 0
        if u == "subword":
            probs[0, :2] = 0  # silence: no target
        soft[u] = (ids, probs)
    return {"labels": labels, "lm_soft": soft}


def test_zero_head_weights_give_the_baseline_loss_bit_for_bit():
    from kdhybrid.nnet.models import ModelConfig, build_model
    from kdhybrid.train.trainer import frame_ce

    torch.manual_seed(0)
    dims = {"senone": 12, "monophone": 5, "subword": 7}
    base = build_model(ModelConfig(arch="tdnn", feat_dim=10, num_pdfs=12, hidden=16, num_layers=2, dropout=0.0))
    heads = build_model(ModelConfig(arch="tdnn", feat_dim=10, num_pdfs=12, hidden=16, num_layers=2, dropout=0.0))
    heads.load_state_dict(base.state_dict())
    for u, v in dims.items():
        heads.add_head(lm_head_name(u), v)
    x, lengths = torch.randn(2, 9, 10), torch.tensor([9, 6])
    batch = _batch(12, dims)
    zero = LmHeadsConfig(posts={u: "x" for u in dims}, weights={u: 0.0 for u in dims}, dims=dims)
    out_b, _ = base(x, lengths)
    ce, _, _ = frame_ce(out_b["main"], batch["labels"], 1)
    out_h, _ = heads(x, lengths)
    r = lm_heads_loss(out_h, batch, zero)
    assert torch.equal(r["loss"], ce)
    ce.backward()
    r["loss"].backward()
    for name, p in base.named_parameters():
        assert torch.equal(p.grad, dict(heads.named_parameters())[name].grad), name
    assert all(heads.heads[lm_head_name(u)].weight.grad is None for u in dims)
    assert r["frames_subword"].item() == 2 * 9 - 3 - 2 and r["frames_monophone"].item() == 15

    # with weights: the main CE plus the weighted soft CEs, by hand
    w = LmHeadsConfig(posts={u: "x" for u in dims}, weights={"senone": 0.5, "monophone": 0.0, "subword": 2.0}, dims=dims)
    out_h, _ = heads(x, lengths)
    r = lm_heads_loss(out_h, batch, w)
    by_hand = ce.detach() + sum(
        wt * -(out_h[lm_head_name(u)].log_softmax(-1).gather(-1, batch["lm_soft"][u][0]) * batch["lm_soft"][u][1]).sum()
        for u, wt in w.weights.items()
    )
    torch.testing.assert_close(r["loss"], by_hand)
    assert "soft_ce_monophone" not in r and "soft_ce_subword" in r
    with pytest.raises(ValueError, match="same units"):
        LmHeadsConfig(posts={"senone": "x"}, weights={}, dims={})
    with pytest.raises(ValueError, match="unknown unit kinds"):
        LmHeadsConfig(posts={"word": "x"}, weights={"word": 1.0}, dims={"word": 3})


def test_interpolation_targets_are_the_interpolation_objective():
    torch.manual_seed(1)
    batch = _batch(12, {"senone": 12}, seed=2)
    ids, probs = batch["lm_soft"]["senone"]
    labels = batch["labels"]
    ti, tp = interpolation_targets(labels, ids, probs, alpha=0.3)
    assert ti.shape == (2, 9, 4)
    dense = torch.zeros(2, 9, 12).scatter_add_(-1, ti, tp)
    valid = labels >= 0
    torch.testing.assert_close(dense.sum(-1)[valid], torch.ones(int(valid.sum())))
    assert (dense.sum(-1)[~valid] == 0).all()
    z = {"main": torch.randn(2, 9, 12)}
    want = student_loss(z, {"labels": labels, "soft_ids": ids, "soft_probs": probs}, DistillConfig("interpolation", "x.scp", alpha=0.3))
    torch.testing.assert_close(soft_ce(z["main"].log_softmax(-1), ti, tp), want["loss"])


# --------------------------------------------------------------------- the trainer


def write_lm_dump(cuts_file, d, num_units, k, masked_frames=0):
    """An LM dump for synthetic cuts: unit ``label % num_units`` at 0.8 and k - 1 others, the
    first ``masked_frames`` frames of every cut without a target; post.json as finish_lm_dump's."""
    from lhotse import CutSet

    from kdhybrid.io.posterior import Posterior, PosteriorWriter

    d.mkdir(parents=True)
    with PosteriorWriter(d / "post.1.ark", d / "post.scp") as w:
        for cut in CutSet.from_file(cuts_file):
            y = cut.load_custom("pdf_ali").astype(np.int32) % num_units
            ids = (y[:, None] + np.arange(k)[None]) % num_units
            probs = np.r_[0.8, np.full(k - 1, 0.2 / (k - 1))][None].repeat(len(y), 0)
            counts = np.full(len(y), k, np.int32)
            counts[:masked_frames] = 0
            has = counts > 0
            w.write(cut.id, Posterior(counts, ids[has].reshape(-1), probs[has].reshape(-1)))
    (d / "post.json").write_text(json.dumps({"K": k, "T": 1.0, "num_units": num_units, "unit": "x"}))
    return str(d / "post.scp")


def test_training_with_zero_weight_heads_is_the_baseline_bit_for_bit(tmp_path):
    import copy

    from test_nnet import NUM_PDFS, make_cuts, small_cfg

    from kdhybrid.train.trainer import load_final, train

    cuts = make_cuts(tmp_path, n=12)
    posts = {"monophone": write_lm_dump(cuts, tmp_path / "mono", 5, 3), "subword": write_lm_dump(cuts, tmp_path / "sub", 7, 2, masked_frames=10)}
    cfg = small_cfg(epochs=2, model={"dropout": 0.1})  # dropout: the heads must not shift the random stream
    train(cfg, cuts, cuts, tmp_path / "base")
    zero = copy.deepcopy(cfg)
    zero.lm_heads = LmHeadsConfig(posts=posts, weights={"monophone": 0.0, "subword": 0.0})
    train(zero, cuts, cuts, tmp_path / "zero")
    a, b = torch.load(tmp_path / "base/final.pt"), torch.load(tmp_path / "zero/final.pt")
    assert sorted(set(b["state_dict"]) - set(a["state_dict"])) == [f"heads.lm_{u}.{p}" for u in ("monophone", "subword") for p in ("bias", "weight")]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert [h["dev_ce"] for h in a["history"]] == [h["dev_ce"] for h in b["history"]]
    assert b["model_config"]["heads"] == {"lm_monophone": 5, "lm_subword": 7}

    heads = copy.deepcopy(cfg)
    heads.lm_heads = LmHeadsConfig(posts=posts, weights={"monophone": 0.5, "subword": 1.0})
    train(heads, cuts, cuts, tmp_path / "heads")
    model, _, ck = load_final(tmp_path / "heads/final.pt")
    h = ck["history"]
    assert h[1]["train_soft_ce_monophone"] < h[0]["train_soft_ce_monophone"] and np.isfinite(h[1]["train_soft_ce_subword"])
    assert not torch.equal(ck["state_dict"]["heads.main.weight"], a["state_dict"]["heads.main.weight"])
    assert model.log_posteriors(torch.randn(1, 30, 40), torch.tensor([30])).shape == (1, 30, NUM_PDFS)  # decoding: the main head


# --------------------------------------------------------------------- the command-line steps


def test_unit_lm_and_dump_entry_points(toy, tmp_path, monkeypatch):
    """kdhybrid.bin.train_unit_lm and dump_lm_posteriors on a tiny ali dir made from the toy:
    the LM dir, then a dump in two jobs merged, read back by kaldi_native_io."""
    import sys

    import kaldi_native_io as kio

    from kdhybrid.bin import dump_lm_posteriors, train_unit_lm
    from kdhybrid.gmm.model import single_gaussian
    from kdhybrid.io.tables import write_int32_vector_ark

    am = khg.AmDiagGmm()
    for _ in range(toy.num_pdfs):
        am.add_pdf(single_gaussian(np.zeros(3), np.ones(3)))
    ali_dir = tmp_path / "ali"
    GmmHmm(toy.topo, toy.tree, toy.tm, am).save(ali_dir)
    rng = np.random.default_rng(0)
    vocab = ["A", "ABOUT", "CAT", "TAT", "THE"]
    texts = {f"utt{i}": list(rng.choice(vocab, int(rng.integers(1, 5)))) for i in range(6)}
    alis = {u: toy.align_text(w, 15 * len(w) + 5, i) for i, (u, w) in enumerate(texts.items())}
    write_int32_vector_ark(ali_dir / "ali.1.gz", {u: alis[u] for u in sorted(alis)[:3]})
    write_int32_vector_ark(ali_dir / "ali.2.gz", {u: alis[u] for u in sorted(alis)[3:]})
    (tmp_path / "lm_text.txt").write_text("".join(" ".join(rng.choice(vocab + ["ZEBRA"], 4)) + "\n" for _ in range(200)))
    for j, utts in ((1, sorted(texts)[:4]), (2, sorted(texts)[4:])):
        (tmp_path / f"data{j}").mkdir()
        (tmp_path / f"data{j}" / "text").write_text("".join(f"{u} {' '.join(texts[u])}\n" for u in utts))

    def run(module, *args):
        monkeypatch.setattr(sys, "argv", [module.__name__, *map(str, args)])
        assert module.main() == 0

    lang = toy.lang_dir
    for unit in ("monophone", "senone"):
        lm_dir, post = tmp_path / unit, tmp_path / unit / "post"
        run(train_unit_lm, "--unit", unit, "--embed-dim", 8, "--hidden-dim", 16, "--max-epochs", 2, "--heldout-every", 10,
            "--no-progress", tmp_path / "lm_text.txt", lang, ali_dir, lm_dir)
        r = json.loads((lm_dir / "unit_lm.json").read_text())
        assert r["heldout_sentences"] == 20 and r["text_sentences"] == 200 and r["epochs"] == 2
        assert r["num_units"] == (len(toy.lang.monophones) if unit == "monophone" else toy.num_pdfs)
        assert r["train_sentences"] == 180 + (6 if unit == "senone" else 0)  # senones: the alignments' sequences too
        assert 0 < r["silence_rates"]["between"] < 1 and np.isfinite(r["heldout_ppl"]) and np.isfinite(r["floor_heldout_ppl"])
        for j in (1, 2):
            run(dump_lm_posteriors, "--job", j, "--topk", 3, tmp_path / f"data{j}", lang, ali_dir, lm_dir, post)
        run(dump_lm_posteriors, "--finish", 2, "--topk", 3, tmp_path, lang, ali_dir, lm_dir, post)
        info = json.loads((post / "post.json").read_text())
        assert (info["utts"], info["frames"], info["K"], info["masked_frames"]) == (6, sum(map(len, alis.values())), 3, 0)
        got = dict(kio.SequentialPosteriorReader(f"scp:{post}/post.scp"))
        assert sorted(got) == sorted(texts) and all(len(got[u]) == len(alis[u]) for u in texts)
        assert all(len(f) == 3 and sum(p for _, p in f) <= 1 + 1e-6 for u in texts for f in got[u])


def test_essence_student_with_lm_heads(tmp_path):
    """Stage 15's combination: a student of a teacher dump with LM heads as well. Zero-weight
    heads leave the student's training as it was, bit for bit (the LM terms are added to the
    student's loss, not to the frame CE); weighted heads learn their LM's targets."""
    import copy

    from test_nnet import make_cuts, small_cfg
    from test_student import write_soft_labels

    from kdhybrid.train.trainer import load_final, train

    cuts = make_cuts(tmp_path, n=12)
    scp = write_soft_labels(cuts, tmp_path / "teacher", k=3, noisy=True)
    posts = {"monophone": write_lm_dump(cuts, tmp_path / "mono", 5, 3), "senone": write_lm_dump(cuts, tmp_path / "sen", 6, 2)}
    cfg = small_cfg(epochs=2, model={"dropout": 0.1})
    cfg.distill = DistillConfig("multitask", str(scp), soft_weight=1.0)
    train(cfg, cuts, cuts, tmp_path / "student")
    zero = copy.deepcopy(cfg)
    zero.lm_heads = LmHeadsConfig(posts=posts, weights={"monophone": 0.0, "senone": 0.0})
    train(zero, cuts, cuts, tmp_path / "zero")
    a, b = torch.load(tmp_path / "student/final.pt"), torch.load(tmp_path / "zero/final.pt")
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert [h["dev_ce"] for h in a["history"]] == [h["dev_ce"] for h in b["history"]]
    heads = copy.deepcopy(cfg)
    heads.lm_heads = LmHeadsConfig(posts=posts, weights={"monophone": 0.3, "senone": 0.3})
    train(heads, cuts, cuts, tmp_path / "heads")
    _, _, ck = load_final(tmp_path / "heads/final.pt")
    h = ck["history"]
    assert ck["train_config"]["distill"]["objective"] == "multitask" and ck["train_config"]["lm_heads"]["weights"]["senone"] == 0.3
    assert h[1]["train_soft_ce_senone"] < h[0]["train_soft_ce_senone"] and h[1]["train_soft_ce_monophone"] < h[0]["train_soft_ce_monophone"]
