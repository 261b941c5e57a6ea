"""Student objectives on synthetic cuts with soft labels in a Kaldi Posterior archive: the
losses by hand, soft labels equal to the hard ones train exactly like hard labels, a separate
distillation head, and soft labels that do not match the cut are refused by name."""
import copy

import numpy as np
import pytest
import torch
from test_nnet import NUM_PDFS, make_cuts, small_cfg

from kdhybrid.distill.objectives import DistillConfig, soft_ce, student_loss
from kdhybrid.io.posterior import PosteriorWriter
from kdhybrid.train.data import BadCutError
from kdhybrid.train.trainer import load_final, train


def write_soft_labels(cuts_file, post_dir, k=1, noisy=False, drop_frame_of=None):
    """post.scp with, for every cut, its hard label as the top soft label (prob 1 for k=1),
    or (noisy) 0.7 on the label and 0.3 spread over k-1 other pdfs."""
    from lhotse import CutSet

    post_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    with PosteriorWriter(post_dir / "post.1.ark", post_dir / "post.scp") as w:
        for cut in CutSet.from_file(cuts_file):
            y = cut.load_custom("pdf_ali").astype(np.int32)
            if cut.id == drop_frame_of:
                y = y[:-1]
            ids = np.zeros((len(y), k), np.int32)
            probs = np.zeros((len(y), k), np.float32)
            ids[:, 0] = y
            probs[:, 0] = 0.7 if noisy else 1.0
            for j in range(1, k):
                ids[:, j] = (y + j + rng.integers(0, 2)) % NUM_PDFS
                probs[:, j] = 0.3 / (k - 1)
            w.write_topk(cut.id, ids, probs)
    return post_dir / "post.scp"


def test_losses_by_hand():
    torch.manual_seed(0)
    z = {"main": torch.randn(2, 5, NUM_PDFS), "distill": torch.randn(2, 5, NUM_PDFS)}
    labels = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, -100, -100]])
    ids = torch.stack([labels.clamp(min=0), (labels.clamp(min=0) + 1) % NUM_PDFS], -1)
    probs = torch.tensor([0.6, 0.2]).expand(2, 5, 2).clone()
    probs[1, 3:] = 0
    batch = {"labels": labels, "soft_ids": ids, "soft_probs": probs}
    lp = z["main"].log_softmax(-1)
    hard = torch.nn.functional.cross_entropy(z["main"].reshape(-1, NUM_PDFS), labels.reshape(-1), ignore_index=-100, reduction="sum")
    soft = -(lp.gather(-1, ids) * probs).sum()
    r = student_loss(z, batch, DistillConfig("multitask", "x.scp", hard_weight=0.5, soft_weight=2.0))
    torch.testing.assert_close(r["loss"], 0.5 * hard + 2.0 * soft)
    r = student_loss(z, batch, DistillConfig("multitask", "x.scp", head="distill", renormalize=True))
    soft_d = -(z["distill"].log_softmax(-1).gather(-1, ids) * (probs / probs.sum(-1, keepdim=True).clamp(min=1e-20))).sum()
    torch.testing.assert_close(r["loss"], hard + soft_d)
    r = student_loss(z, batch, DistillConfig("interpolation", "x.scp", alpha=0.25))
    torch.testing.assert_close(r["loss"], 0.75 * hard + 0.25 * soft_ce(lp, ids, probs, True))
    with pytest.raises(ValueError, match="needs distill.posts"):
        DistillConfig("multitask")


@pytest.mark.parametrize("sub,chunks", [(1, False), (3, False), (3, True)])
def test_one_hot_soft_labels_train_exactly_like_hard_labels(tmp_path, sub, chunks):
    """Soft labels = the hard labels (k=1, p=1): pure distillation (hard weight 0) follows the
    hard-label run weight for weight, through the real loader and Posterior archive; also for
    a student with 30 ms outputs (subsampling 3: the targets of the frames its outputs land
    on) and in chunk batches (the chunks' own frames' targets)."""
    cuts = make_cuts(tmp_path)
    scp = write_soft_labels(cuts, tmp_path / "post", k=1)
    cfg = small_cfg(epochs=2, model={"subsampling": sub}, **(dict(chunk_frames=21, batch_frames=120) if chunks else {}))
    train(cfg, cuts, cuts, tmp_path / "hard")
    kd = copy.deepcopy(cfg)
    kd.distill = DistillConfig("full", str(scp), hard_weight=0.0, soft_weight=1.0)
    train(kd, cuts, cuts, tmp_path / "soft")
    a = torch.load(tmp_path / "hard/final.pt")["state_dict"]
    b = torch.load(tmp_path / "soft/final.pt")["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_multitask_student_with_distillation_head(tmp_path):
    cuts = make_cuts(tmp_path)
    scp = write_soft_labels(cuts, tmp_path / "post", k=3, noisy=True)
    cfg = small_cfg(epochs=4)
    cfg.distill = DistillConfig("multitask", str(scp), head="distill", soft_weight=0.5)
    r = train(cfg, cuts, cuts, tmp_path / "student")
    model, _, ck = load_final(tmp_path / "student/final.pt")
    assert set(model.heads) == {"main", "distill"} and ck["train_config"]["distill"]["head"] == "distill"
    assert r["history"][-1]["dev_acc"] > 0.5  # 12 classes: chance is ~0.08


def test_soft_labels_must_match_the_cut(tmp_path):
    from lhotse import CutSet

    cuts = make_cuts(tmp_path)
    victim = next(iter(CutSet.from_file(cuts))).id
    scp = write_soft_labels(cuts, tmp_path / "post", drop_frame_of=victim)
    cfg = small_cfg(epochs=1)
    cfg.distill = DistillConfig("multitask", str(scp))
    with pytest.raises(BadCutError, match=f"cut '{victim}': [0-9]+ soft-label frames in {scp} but [0-9]+ label frames"):
        train(cfg, cuts, cuts, tmp_path / "exp")
