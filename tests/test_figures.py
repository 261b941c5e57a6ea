"""kdhybrid.distill.figures: the plotted numbers, the PNGs, atomic writes and the input checks."""
from pathlib import Path

import pytest

from kdhybrid.distill.figures import plot_lm_ablation, plot_wer_by_system, plot_wer_vs_k

PNG = b"\x89PNG\r\n\x1a\n"


def _check_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG
    assert not list(path.parent.glob("*.tmp.png"))


def test_wer_by_system(tmp_path):
    out = tmp_path / "figs" / "wer_test.png"  # the parent dir does not exist yet
    got = plot_wer_by_system([("teacher", [20.0, 22.0, 21.0]), ("student", [25.0]), ("gmm", [30.0, 34.0])],
                             "test", out)
    assert [g[0] for g in got] == ["teacher", "student", "gmm"]  # the given order
    assert [g[3] for g in got] == [3, 1, 2]
    assert got[0][1:3] == pytest.approx((21.0, 1.0))
    assert got[1][1:3] == pytest.approx((25.0, 0.0))  # one seed: sd 0
    assert got[2][1:3] == pytest.approx((32.0, 2 * 2 ** 0.5))  # sd of (30, 34), ddof=1: sqrt(8/1)
    _check_png(out)


def test_wer_by_system_empty_seeds(tmp_path):
    out = tmp_path / "wer.png"
    with pytest.raises(ValueError, match="nobody"):
        plot_wer_by_system([("teacher", [20.0]), ("nobody", [])], "test", out)
    assert not list(tmp_path.iterdir())


def test_wer_vs_k(tmp_path):
    students = {
        "with hard labels": {"all": [18.0, 20.0], "40": [19.0], "5": [21.0, 23.0], "10": [20.0, 20.0], "1": [30.0, 32.0, 31.0]},
        "soft labels only": {"10": [22.0, 24.0], "all": [21.0]},
    }
    mass = {str(k): min(1.0, 0.5 + 0.005 * k) for k in range(1, 101)}
    out = tmp_path / "wer_vs_k.png"
    got = plot_wer_vs_k(students, mass, "dev", out)
    assert list(got) == ["with hard labels", "soft labels only"]
    hard = got["with hard labels"]
    assert [k for k, _, _ in hard] == ["1", "5", "10", "40", "all"]  # numeric order, not "1", "10", "40", "5"
    assert [x for _, m, sd in hard for x in (m, sd)] == pytest.approx([31.0, 1.0, 22.0, 2 ** 0.5, 20.0, 0.0,
                                                                       19.0, 0.0, 19.0, 2 ** 0.5])
    soft = got["soft labels only"]
    assert [k for k, _, _ in soft] == ["10", "all"]
    assert [x for _, m, sd in soft for x in (m, sd)] == pytest.approx([23.0, 2 ** 0.5, 21.0, 0.0])
    _check_png(out)


@pytest.mark.parametrize("bad", ["top5", "0", "-3", "2.5"])
def test_wer_vs_k_bad_key(tmp_path, bad):
    out = tmp_path / "k.png"
    with pytest.raises(ValueError, match=bad):
        plot_wer_vs_k({"s": {"1": [20.0], bad: [21.0]}}, {"1": 0.6}, "dev", out)
    with pytest.raises(ValueError, match=bad):  # the mass curve's keys are checked too
        plot_wer_vs_k({"s": {"1": [20.0]}}, {"1": 0.6, bad: 0.7}, "dev", out)
    assert not out.exists()


def test_wer_vs_k_empty_seeds(tmp_path):
    with pytest.raises(ValueError, match="soft"):
        plot_wer_vs_k({"soft": {"1": [20.0], "5": []}}, {}, "dev", tmp_path / "k.png")


def test_lm_ablation(tmp_path):
    rows = [("baseline CE", 45.0, [20.0, 22.0, 21.0]),
            ("+ LM distillation", None, [19.0, 19.5]),
            ("+ LM distillation, T=2", 47.5, [18.0])]
    out = tmp_path / "lm_ablation.png"
    got = plot_lm_ablation(rows, "baseline CE", "test", out)
    assert [g[0] for g in got] == ["baseline CE", "+ LM distillation", "+ LM distillation, T=2"]
    assert [x for g in got for x in g[1:]] == pytest.approx([21.0, 1.0, 19.25, 0.5 / 2 ** 0.5, 18.0, 0.0])
    _check_png(out)


def test_lm_ablation_errors(tmp_path):
    out = tmp_path / "lm.png"
    with pytest.raises(ValueError, match="no-such-system"):
        plot_lm_ablation([("a", 40.0, [20.0])], "no-such-system", "test", out)
    with pytest.raises(ValueError, match="empty-one"):
        plot_lm_ablation([("a", 40.0, [20.0]), ("empty-one", 41.0, [])], "a", "test", out)
    assert not out.exists()


def test_overwrite_leaves_no_tmp(tmp_path):
    out = tmp_path / "wer.png"
    out.write_bytes(b"old")
    plot_wer_by_system([("x", [10.0, 12.0])], "dev", out)
    _check_png(out)
