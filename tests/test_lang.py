"""Lang dirs: errors name the line; phones/topo/FSTs checked with kaldi-hmm-gmm, kaldifst and
OpenFst's own command-line tools (fstinfo, fstprint); G from ARPA with kaldilm."""
import subprocess

import pytest

from kdhybrid.io.tables import KaldiFormatError
from kdhybrid.kaldi_libs import kaldi_hmm_gmm, kaldifst
from kdhybrid.lang.lang_dir import add_disambig, prepare_lang, read_dict_dir
from kdhybrid.lang.ngram import arpa_counts, format_lm, perplexity, train_arpa

LEXICON = """!SIL SIL
<UNK> SPN
A AH
A EY
ABOUT AH B AW T
AB AE B
CAT K AE T
CATS K AE T S
DOG D AO G
THE DH AH
THE DH IY
RED R EH D
READ R EH D
READ R IY D
"""


def make_dict(d, lexicon=LEXICON):
    d.mkdir(parents=True, exist_ok=True)
    (d / "lexicon.txt").write_text(lexicon)
    phones = sorted({p for line in LEXICON.splitlines() for p in line.split()[1:]} - {"SIL", "SPN"})
    (d / "nonsilence_phones.txt").write_text("".join(p + "\n" for p in phones))
    (d / "silence_phones.txt").write_text("SIL\nSPN\n")
    (d / "optional_silence.txt").write_text("SIL\n")
    return d


@pytest.mark.parametrize(
    "line,pattern",
    [
        ("DOG\n", r"lexicon.txt:15: word 'DOG' has no pronunciation"),
        ("DOG D AO XX\n", r"lexicon.txt:15: phone 'XX' of word 'DOG' is in no phone list"),
        ("CAT K AE T\n", r"lexicon.txt:15: duplicate entry 'CAT K AE T' \(first at line 7\)"),
    ],
)
def test_bad_lexicon_lines(tmp_path, line, pattern):
    d = make_dict(tmp_path / "dict", LEXICON + line)
    with pytest.raises(KaldiFormatError, match=pattern):
        read_dict_dir(d)


def test_disambiguation_like_add_lex_disambig():
    prons = [("R", "EH", "D"), ("R", "EH", "D"), ("K", "AE", "T"), ("K", "AE", "T", "S"), ("D",)]
    nums, mx = add_disambig(prons)
    assert nums == [1, 2, 1, None, None] and mx == 2


def test_lang_dir(tmp_path):
    d = make_dict(tmp_path / "dict")
    sizes = prepare_lang(d, "<UNK>", tmp_path / "lang")
    lang = tmp_path / "lang"
    phones = dict(l.split() for l in (lang / "phones.txt").read_text().splitlines())
    # 2 silence phones x 5 variants + 13 nonsilence x 4 positions.
    n_nonsil = len((d / "nonsilence_phones.txt").read_text().split())
    assert sizes["phones"] == 2 * 5 + 4 * n_nonsil
    assert list(phones)[:3] == ["<eps>", "SIL", "SIL_B"] and "K_B" in phones and "K" not in phones
    disambig = (lang / "phones/disambig.txt").read_text().split()
    assert disambig == ["#0", "#1", "#2", "#3"]  # READ/RED need #1 #2, +1 for silence
    words = (lang / "words.txt").read_text().split()[::2]
    assert words[:3] == ["<eps>", "!SIL", "<UNK>"] and words[-3:] == ["#0", "<s>", "</s>"]
    assert (lang / "oov.int").read_text().strip() == str(words.index("<UNK>"))
    # topo parses with Kaldi's own HmmTopology: 3 states for phones, 5 for silence.
    topo = kaldi_hmm_gmm.HmmTopology()
    topo.read((lang / "topo").read_text())
    topo.check()
    assert sorted(topo.phones) == sorted(int(v) for k, v in phones.items() if not k.startswith(("#", "<")))
    assert topo.num_pdf_classes(int(phones["K_B"])) == 3 and topo.num_pdf_classes(int(phones["SIL"])) == 5
    assert topo.min_length(int(phones["K_B"])) == 3
    # OpenFst's own tools read both FSTs.
    for name in ("L.fst", "L_disambig.fst"):
        info = subprocess.run(["fstinfo", str(lang / name)], capture_output=True, text=True, check=True).stdout
        assert "vector" in info and "standard" in info
    printed = subprocess.run(["fstprint", str(lang / "L_disambig.fst")], capture_output=True, text=True, check=True).stdout
    pid = {k: int(v) for k, v in phones.items()}
    wid = {w: i for i, w in enumerate(words)}
    arcs = [l.split() for l in printed.splitlines() if len(l.split()) >= 4]
    # #0:#0 self-loops for G's backoff, and READ/RED disambiguated with #1/#2.
    assert any(a[0] == a[1] and a[2] == str(pid["#0"]) and a[3] == str(wid["#0"]) for a in arcs)
    assert sum(a[2] in (str(pid["#1"]), str(pid["#2"])) for a in arcs) >= 2
    # L_disambig o G determinizes (the reason for disambiguation symbols).
    text = tmp_path / "text.txt"
    text.write_text("THE CAT READ\nTHE RED DOG\nA DOG READ ABOUT THE CATS\nTHE DOG\nA CAT\n" * 3)
    arpa = tmp_path / "lm.arpa"
    counts = train_arpa(text, 3, arpa)
    assert counts == arpa_counts(arpa) and int(counts["1"]) >= 9
    format_lm(lang, arpa, tmp_path / "lang_test")
    G = kaldifst.StdVectorFst.read(str(tmp_path / "lang_test" / "G.fst"))
    Ld = kaldifst.StdVectorFst.read(str(lang / "L_disambig.fst"))
    kaldifst.arcsort(Ld, sort_type="olabel")
    LG = kaldifst.compose(Ld, G)
    assert kaldifst.determinize_star(LG) is False  # False: completed, not cut off at max_states
    LG.write(str(tmp_path / "LG.fst"))
    lginfo = subprocess.run(["fstinfo", str(tmp_path / "LG.fst")], capture_output=True, text=True, check=True).stdout
    assert [l.split()[-1] for l in lginfo.splitlines() if l.startswith("input deterministic")] == ["y"]
    ginfo = subprocess.run(["fstinfo", str(tmp_path / "lang_test" / "G.fst")], capture_output=True, text=True, check=True).stdout
    assert "# of states" in ginfo
    ppl = perplexity(arpa, ["THE CAT READ", "A RED CAT"])
    assert ppl["words"] == 6 and ppl["oov"] == 0 and 1.0 < ppl["ppl"] < 50


HAND_ARPA = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.5
-0.5\tA\t-0.3
-0.7\tB

\\2-grams:
-0.2\t<s> A
-0.1\tA B

\\end\\
"""


def test_perplexity_by_hand_with_an_oov(tmp_path):
    """SRILM's convention: the OOV word X is left out (not its sentence), B after it backs off
    to its unigram. By hand: "A X B" -0.2 - 0.7 - 1.0, "A B" -0.2 - 0.1 - 1.0; 6 tokens scored
    with </s>, 4 without."""
    arpa = tmp_path / "hand.arpa"
    arpa.write_text(HAND_ARPA)
    ppl = perplexity(arpa, ["A X B", "A B", ""])
    assert ppl["sentences"] == 2 and ppl["words"] == 5 and ppl["oov"] == 1 and ppl["oov_rate"] == 0.2
    assert ppl["ppl"] == pytest.approx(10 ** (3.2 / 6), abs=0.01) and ppl["ppl1"] == pytest.approx(10 ** (3.2 / 4), abs=0.01)


def test_train_lm_pair_and_report(tmp_path, venv_env):
    """bin/train_lm: the large LM, the graph LM pruned from it, the vocabulary file honoured
    (ABOUT left out of it: mapped to <UNK> in training, an OOV in the dev text), and a report
    whose numbers are those of the files."""
    import json
    import random

    lang = tmp_path / "lang"
    prepare_lang(make_dict(tmp_path / "dict"), "<UNK>", lang)
    rng = random.Random(0)
    words = ["THE", "A", "CAT", "CATS", "DOG", "RED", "READ", "ABOUT", "AB"]
    sents = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 7))) for _ in range(400)]
    (tmp_path / "lm_text.txt").write_text("".join(s + "\n" for s in sents))
    (tmp_path / "vocab.txt").write_text("".join(w + "\n" for w in words if w != "ABOUT"))
    (tmp_path / "dev_text").write_text("u1 THE CAT READ ABOUT A DOG\nu2 A RED CAT\nu3\n")
    r = subprocess.run(
        ["python", "-m", "kdhybrid.bin.train_lm", "--order", "3", "--pruned", "1e-3", str(tmp_path / "small.arpa"),
         "--vocab", str(tmp_path / "vocab.txt"), "--dev-text", str(tmp_path / "dev_text"), "--report", str(tmp_path / "lm.json"),
         str(tmp_path / "lm_text.txt"), str(lang), str(tmp_path / "large.arpa")],
        env=venv_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path / "lm.json").read_text())
    assert list(rep["lms"]) == ["large", "small"] and rep["sentences"] == 400 and rep["vocabulary"] == 8
    large, small = rep["lms"]["large"], rep["lms"]["small"]
    assert large["ngrams"] == arpa_counts(tmp_path / "large.arpa") and small["ngrams"] == arpa_counts(tmp_path / "small.arpa")
    assert large["prune"] == 0 and small["prune"] == 1e-3 and large["order"] == small["order"] == 3
    assert small["ngrams"]["1"] == large["ngrams"]["1"] and sum(small["ngrams"].values()) < sum(large["ngrams"].values())
    assert json.loads((tmp_path / "small.arpa.json").read_text()) == small
    dev = str(tmp_path / "dev_text")
    for name, lm in (("large", large), ("small", small)):
        assert lm["eval"][dev] == perplexity(tmp_path / f"{name}.arpa", ["THE CAT READ ABOUT A DOG", "A RED CAT"])
        assert lm["eval"][dev]["oov"] == 1 and lm["eval"][dev]["words"] == 9
    unigrams = (tmp_path / "large.arpa").read_text().split("\\2-grams:")[0].split()
    assert "ABOUT" not in unigrams and "<UNK>" in unigrams
    out = [l for l in r.stdout.splitlines() if l.startswith("train_lm:")]
    assert out[0].startswith("train_lm: large: order 3, prune 0,") and out[1].startswith("train_lm: small: order 3, prune 0.001,")
    assert f"{dev}: ppl {large['eval'][dev]['ppl']}, OOV 11.11% of 9 words" in out[0]
