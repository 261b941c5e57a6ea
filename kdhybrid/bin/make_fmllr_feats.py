"""Write a GMM system's features of one data dir (one job of steps/make_fmllr_feats.sh): spliced
cepstra -> LDA+MLLT (the model dir's final.mat) -> each speaker's fMLLR transform (the
transform dir's trans.*), as Kaldi's transform-feats pipeline in steps/nnet/make_fmllr_feats.sh.

e.g.: python -m kdhybrid.bin.make_fmllr_feats --transform-dir exp/tri3_ali exp/tri3 \\
          data/train/split2/1 fmllr/feats_train.1.ark fmllr/feats_train.1.scp

Writes the archive and scp atomically and ``<scp>.utt2num_frames``.
"""
import argparse
import sys
import time

from kdhybrid.gmm.feats import FeaturePipeline, write_pipeline_features
from kdhybrid.io.tables import write_text_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transform-dir", help="dir with the speakers' fMLLR transforms trans.* (none: LDA+MLLT only)")
    p.add_argument("model_dir", help="the GMM's exp dir (feat_opts.json, final.mat)")
    p.add_argument("data_dir")
    p.add_argument("ark")
    p.add_argument("scp")
    a = p.parse_args()
    t0 = time.time()
    pipe = FeaturePipeline.from_model_dir(a.model_dir, a.transform_dir, a.data_dir, speaker_independent=a.transform_dir is None)
    frames = write_pipeline_features(pipe, a.data_dir, a.ark, a.scp)
    write_text_table(a.scp + ".utt2num_frames", frames)
    print(f"make_fmllr_feats: {len(frames)} utterances, {sum(frames.values())} frames "
          f"({'fMLLR of ' + a.transform_dir if a.transform_dir else 'speaker-independent'}) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
