"""Posterior archives against kaldi_native_io, the independent reader/writer."""
import os

import kaldi_native_io as kio
import numpy as np
import pytest

from kdhybrid.io.posterior import (
    Posterior,
    PosteriorReader,
    PosteriorWriter,
    encode_posterior,
    read_posterior_ark,
    read_posterior_scp,
)
from kdhybrid.io.tables import KaldiFormatError


def random_posteriors(rng, n_utts=20, ragged_every=4, k=10, num_pdfs=3000):
    out = {}
    for i in range(n_utts):
        t = int(rng.integers(0, 200)) if i else 0  # the first one is empty (0 frames)
        if i % ragged_every == 1:
            counts = rng.integers(0, 2 * k, t).astype(np.int32)
        else:
            counts = np.full(t, k, np.int32)
        n = int(counts.sum())
        ids = rng.integers(0, num_pdfs, n).astype(np.int32)
        probs = rng.random(n).astype(np.float32)
        out[f"utt{i:03d}"] = Posterior(counts, ids, probs)
    return out


def assert_same(kio_post, mine: Posterior):
    assert len(kio_post) == mine.num_frames
    ref = mine.to_list()
    for f, (a, b) in enumerate(zip(kio_post, ref)):
        assert [p[0] for p in a] == [p[0] for p in b], f"frame {f}"
        np.testing.assert_array_equal(np.float32([p[1] for p in a]), np.float32([p[1] for p in b]))


def test_kaldi_native_io_reads_our_binary_archive(tmp_path):
    rng = np.random.default_rng(0)
    posts = random_posteriors(rng)
    ark, scp = tmp_path / "post.1.ark", tmp_path / "post.scp"
    with PosteriorWriter(ark, scp) as w:
        for k, p in posts.items():
            w.write(k, p)
    seen = []
    for key, value in kio.SequentialPosteriorReader(f"scp:{scp}"):
        assert_same(value, posts[key])
        seen.append(key)
    assert seen == list(posts)
    # Random access by scp offset, through kaldi_native_io too.
    ra = kio.RandomAccessPosteriorReader(f"scp:{scp}")
    assert_same(ra["utt005"], posts["utt005"])
    assert sum(p.num_frames for p in posts.values()) > 1000


def test_kaldi_native_io_reads_our_text_archive(tmp_path):
    posts = {"a": Posterior.from_list([[(1, 0.5), (2, 0.25)], [], [(3, 1.0)]])}
    ark = tmp_path / "t.ark"
    with PosteriorWriter(ark, binary=False) as w:
        w.write("a", posts["a"])
    # Byte-identical to what kaldi_native_io writes in text mode.
    ref = tmp_path / "ref.ark"
    with kio.PosteriorWriter(f"ark,t:{ref}") as kw:
        kw.write("a", posts["a"].to_list())
    assert ark.read_bytes() == ref.read_bytes() == b"a [ 1 0.5 2 0.25 ] [ ] [ 3 1 ] \n"
    (key, value), = list(kio.SequentialPosteriorReader(f"ark:{ark}"))
    assert key == "a"
    assert_same(value, posts["a"])


def test_we_read_kaldi_native_io_archives(tmp_path):
    rng = np.random.default_rng(1)
    posts = random_posteriors(rng, n_utts=12)
    ark, scp = tmp_path / "k.ark", tmp_path / "k.scp"
    with kio.PosteriorWriter(f"ark,scp:{ark},{scp}") as kw:
        for k, p in posts.items():
            kw.write(k, p.to_list())
    got = dict(read_posterior_ark(ark))
    assert list(got) == list(posts)
    reader = PosteriorReader(scp)
    max_diff = 0.0
    for k, p in posts.items():
        for q in (got[k], reader[k]):
            np.testing.assert_array_equal(q.counts, p.counts)
            np.testing.assert_array_equal(q.ids, p.ids)
            if p.probs.size:
                max_diff = max(max_diff, float(np.abs(q.probs - p.probs).max()))
    assert max_diff == 0.0
    # The bytes of kaldi_native_io's binary archive equal ours for the same content.
    ours = tmp_path / "ours.ark"
    with PosteriorWriter(ours) as w:
        for k, p in posts.items():
            w.write(k, p)
    assert ours.read_bytes() == ark.read_bytes()
    # Text archives from kaldi_native_io.
    tark = tmp_path / "k.txt.ark"
    with kio.PosteriorWriter(f"ark,t:{tark}") as kw:
        for k, p in posts.items():
            kw.write(k, p.to_list())
    for k, q in read_posterior_ark(tark):
        np.testing.assert_array_equal(q.ids, posts[k].ids)
        np.testing.assert_allclose(q.probs, posts[k].probs, rtol=1e-5)


def test_topk_helpers_and_dense():
    ids = np.array([[3, 1], [0, 2]])
    probs = np.array([[0.7, 0.2], [0.6, 0.4]], np.float32)
    p = Posterior.from_topk(ids, probs)
    i2, p2 = p.to_topk()
    np.testing.assert_array_equal(i2, ids)
    dense = p.to_dense(4)
    np.testing.assert_allclose(dense, [[0, 0.2, 0, 0.7], [0.6, 0, 0.4, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        p.to_dense(3)


def _two_entry_archive(tmp_path):
    rng = np.random.default_rng(2)
    ark, scp = tmp_path / "p.ark", tmp_path / "p.scp"
    with PosteriorWriter(ark, scp) as w:
        w.write_topk("first", rng.integers(0, 50, (30, 5)), rng.random((30, 5)))
        w.write_topk("second", rng.integers(0, 50, (40, 5)), rng.random((40, 5)))
    return ark, scp


def test_truncated_archive_names_key_and_offset(tmp_path):
    ark, scp = _two_entry_archive(tmp_path)
    data = ark.read_bytes()
    ark.write_bytes(data[:-7])
    with pytest.raises(KaldiFormatError, match=r"entry 'second' at byte \d+: truncated"):
        list(read_posterior_ark(ark))
    with pytest.raises(KaldiFormatError, match=r"entry 'second' at byte \d+"):
        PosteriorReader(scp)["second"]
    # The first entry is still readable by random access.
    assert PosteriorReader(scp)["first"].num_frames == 30


def test_corrupted_archive_names_key_and_offset(tmp_path):
    ark, scp = _two_entry_archive(tmp_path)
    data = bytearray(ark.read_bytes())
    second = int(open(scp).read().split()[-1].rsplit(":", 1)[1])
    # Clobber the size marker of frame 3's header of the second entry.
    frame3 = second + 7 + 3 * (5 + 50)
    data[frame3] = 9
    ark.write_bytes(bytes(data))
    with pytest.raises(KaldiFormatError) as e:
        list(read_posterior_ark(ark))
    msg = str(e.value)
    assert "entry 'second'" in msg and f"at byte {frame3}" in msg and "frame 3" in msg
    # A clobbered frame count (absurdly large) is reported as truncation, not garbage.
    data = bytearray(ark.read_bytes())
    data[frame3] = 4
    data[frame3 + 1 : frame3 + 5] = (10**6).to_bytes(4, "little")
    ark.write_bytes(bytes(data))
    with pytest.raises(KaldiFormatError, match=r"entry 'second' at byte \d+: truncated inside frame 3"):
        PosteriorReader(scp)["second"]


def test_writer_is_atomic(tmp_path):
    ark, scp = tmp_path / "p.ark", tmp_path / "p.scp"
    with PosteriorWriter(ark, scp) as w:
        w.write_topk("a", np.zeros((2, 1)), np.ones((2, 1)))
    before = ark.read_bytes()
    with pytest.raises(RuntimeError):
        with PosteriorWriter(ark, scp) as w:
            w.write_topk("b", np.zeros((2, 1)), np.ones((2, 1)))
            raise RuntimeError("killed")
    assert ark.read_bytes() == before
    assert not os.path.exists(str(ark) + ".tmp") and not os.path.exists(str(scp) + ".tmp")
    assert [k for k, _ in read_posterior_scp(scp)] == ["a"]


def test_encode_is_independent_of_path(tmp_path):
    # Fixed-k and ragged code paths give the same bytes for the same content.
    p = Posterior.from_topk(np.arange(12).reshape(4, 3), np.linspace(0, 1, 12).reshape(4, 3))
    fixed = encode_posterior(p)
    # Force the ragged path: a 0-count frame appended and then compare the prefix layout.
    r = Posterior(np.r_[p.counts, 0], p.ids, p.probs)
    ragged = encode_posterior(r)
    assert ragged[7:] == fixed[7:] + b"\x04\x00\x00\x00\x00"
    assert len(fixed) == 7 + 4 * (5 + 30)
