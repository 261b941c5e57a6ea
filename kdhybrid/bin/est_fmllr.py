"""Estimate every speaker's fMLLR transform for one data split (Kaldi's gmm-est-fmllr as
align_fmllr.sh and decode_fmllr.sh use it): the speaker-independent features of the SAT
model in <model-dir>, the frames' pdfs from an alignment or from the best paths of a first
decoding pass, silence frames weighted by --silence-weight. Writes a Kaldi archive of
(D, D+1) matrices; speakers with too little data keep the identity and are named.

e.g.: python -m kdhybrid.bin.est_fmllr --alignments exp/tri3_ali/ali_si.1.gz exp/tri3 data/lang \\
          data/train/split2/1 exp/tri3_ali/trans.1
      python -m kdhybrid.bin.est_fmllr --lattices exp/tri3/decode_dev.si/lat.1.pt --silence-weight 0.01 \\
          exp/tri3 data/lang data/dev/split2/1 exp/tri3/decode_dev/trans.1
"""
import argparse
import sys

import numpy as np


def best_path_pdfs(lat_file: str) -> dict:
    """utt -> (T,) int32 pdfs of each lattice's best path (arc labels are pdf + 1); an
    utterance whose lattice is empty is left out (its frames then do not count)."""
    import k2
    import torch

    from kdhybrid.decode.lattice import load_lattices

    utts, lat, _ = load_lattices(lat_file)
    best = k2.shortest_path(lat, use_double_scores=True)
    # per-path labels through the ragged arc shape (indexing single FSAs of this vector
    # crashed k2 1.23.4 when some lattices were empty)
    labels = k2.RaggedTensor(best.arcs.shape().remove_axis(1), best.labels.to(torch.int32).contiguous()).remove_values_leq(0).tolist()
    return {u: np.asarray(lab, dtype=np.int32) - 1 for u, lab in zip(utts, labels) if lab}


def main() -> int:
    import logging

    from kdhybrid.gmm.align import Lang
    from kdhybrid.gmm.feats import FeaturePipeline
    from kdhybrid.gmm.model import GmmHmm
    from kdhybrid.gmm.sat import estimate_transforms_for_data
    from kdhybrid.io.tables import read_int32_vector_ark, write_transform_ark
    from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--alignments", help="ali.JOB.gz (transition-ids) of the data split")
    src.add_argument("--lattices", help="lat.JOB.pt of a first decoding pass of the data split")
    p.add_argument("--silence-weight", type=float, default=0.0)
    p.add_argument("model_dir")
    p.add_argument("lang_dir")
    p.add_argument("data_dir")
    p.add_argument("trans_out")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    model = GmmHmm.load(a.model_dir)
    pipeline = FeaturePipeline.from_model_dir(a.model_dir, speaker_independent=True)
    if a.alignments:
        tid2pdf = model.tid2pdf()
        pdfs = {u: tid2pdf[ali] for u, ali in read_int32_vector_ark(a.alignments)}
    else:
        pdfs = best_path_pdfs(a.lattices)
    lang = Lang(a.lang_dir)
    sil = sorted({int(x) for x in khg.get_pdfs_for_phones(model.tm, sorted(lang.silence))[1]})
    trans, info = estimate_transforms_for_data(model, pipeline, a.data_dir, pdfs, sil, a.silence_weight)
    write_transform_ark(a.trans_out, trans)
    fb = info["fallback"]
    print(f"est_fmllr: {a.trans_out}: {info['speakers']} speakers, objective improvement {info['objf_impr_per_frame']:.4f} "
          f"per frame, {len(fb)} kept the identity" + (f" ({'; '.join(f'{s}: {w}' for s, w in fb.items())})" if fb else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
