"""Alignment (int32 vector) archives, matrices and text tables, checked against
kaldi_native_io and kaldiio."""
import gzip

import kaldi_native_io as kio
import kaldiio
import numpy as np
import pytest

from kdhybrid.io.tables import (
    Int32VectorWriter,
    KaldiFormatError,
    MatrixWriter,
    read_int32_vector_ark,
    read_matrix_scp,
    read_text_table,
    write_text_table,
)


def test_gzipped_alignments_roundtrip_with_kaldi_native_io(tmp_path):
    rng = np.random.default_rng(0)
    alis = {f"spk1-utt{i}": rng.integers(1, 500, rng.integers(0, 300)).astype(np.int32) for i in range(10)}
    gz = tmp_path / "ali.1.gz"
    with Int32VectorWriter(gz) as w:
        for k, v in alis.items():
            w.write(k, v)
    plain = tmp_path / "ali.1.ark"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    got = {k: np.array(v, np.int32) for k, v in kio.SequentialInt32VectorReader(f"ark:{plain}")}
    assert list(got) == list(alis)
    for k in alis:
        np.testing.assert_array_equal(got[k], alis[k])
    # kaldi_native_io's own writer -> our reader, binary and text.
    for spec, name in (("ark", "b.ark"), ("ark,t", "t.ark")):
        with kio.Int32VectorWriter(f"{spec}:{tmp_path / name}") as kw:
            for k, v in alis.items():
                kw.write(k, v.tolist())
        back = dict(read_int32_vector_ark(tmp_path / name))
        for k in alis:
            np.testing.assert_array_equal(back[k], alis[k])
    with Int32VectorWriter(tmp_path / "mine.t.ark", binary=False) as w:
        w.write("a", np.array([1, 2, 3]))
    assert (tmp_path / "mine.t.ark").read_text() == "a 1 2 3 \n"


def test_truncated_alignment_is_an_error(tmp_path):
    p = tmp_path / "ali.ark"
    with Int32VectorWriter(p) as w:
        w.write("u1", np.arange(10))
        w.write("u2", np.arange(10))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(KaldiFormatError, match=r"entry 'u2' at byte \d+: truncated"):
        list(read_int32_vector_ark(p))


def test_matrices_readable_by_kaldiio(tmp_path):
    rng = np.random.default_rng(0)
    mats = {"a": rng.standard_normal((7, 3)).astype(np.float32), "b": rng.standard_normal(4), "c": np.zeros((0, 3), np.float32)}
    ark, scp = tmp_path / "feats.ark", tmp_path / "feats.scp"
    with MatrixWriter(ark, scp) as w:
        for k, m in mats.items():
            w.write(k, m)
    via_kaldiio = kaldiio.load_scp(str(scp))
    for k, m in mats.items():
        np.testing.assert_array_equal(via_kaldiio[k], m)
        assert via_kaldiio[k].dtype == m.dtype
    got = dict(read_matrix_scp(scp))
    np.testing.assert_array_equal(got["a"], mats["a"])
    # And kaldi_native_io reads the float matrix too.
    r = kio.RandomAccessFloatMatrixReader(f"scp:{scp}")
    np.testing.assert_array_equal(r["a"], mats["a"])


def test_text_table_errors_name_file_and_line(tmp_path):
    p = tmp_path / "utt2spk"
    p.write_text("a s1\nb s1\na s2\n")
    with pytest.raises(KaldiFormatError, match=r"utt2spk:3: duplicate key 'a'"):
        read_text_table(p)
    p.write_text("a s1\nb\n")
    with pytest.raises(KaldiFormatError, match=r"utt2spk:2: expected at least 2 fields"):
        read_text_table(p)
    write_text_table(p, {"b": "x", "B": "y", "a_1": ["p", "q"]})
    assert p.read_text() == "B y\na_1 p q\nb x\n"  # C byte order: uppercase first
