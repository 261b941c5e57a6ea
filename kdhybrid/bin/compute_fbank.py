"""Compute Kaldi-compatible fbank features of one data dir (one job of make_fbank.sh).

e.g.: python -m kdhybrid.bin.compute_fbank --config conf/fbank.conf \\
          data/train/split2utt/1 fbank/raw_fbank_train.1.ark fbank/raw_fbank_train.1.scp

Writes the archive and scp atomically and ``<scp>.utt2num_frames``.
"""
import argparse
import sys
import time

from kdhybrid.features.fbank import FbankConfig, compute_fbank, iter_data_dir_audio
from kdhybrid.io.tables import MatrixWriter, write_text_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="Kaldi-style fbank config (--num-mel-bins=40 ...)")
    p.add_argument("data_dir")
    p.add_argument("ark")
    p.add_argument("scp")
    args = p.parse_args()
    cfg = FbankConfig.from_kaldi_conf(args.config) if args.config else FbankConfig()
    opts = cfg.to_knf()
    t0 = time.time()
    frames = {}
    audio_seconds = 0.0
    with MatrixWriter(args.ark, args.scp) as w:
        for utt, samples in iter_data_dir_audio(args.data_dir, int(cfg.sample_frequency)):
            feats = compute_fbank(samples, cfg, opts)
            if feats.shape[0] == 0:
                raise RuntimeError(f"{args.data_dir}: utterance '{utt}' is too short for one frame ({len(samples)} samples)")
            w.write(utt, feats)
            frames[utt] = feats.shape[0]
            audio_seconds += len(samples) / cfg.sample_frequency
    write_text_table(args.scp + ".utt2num_frames", frames)
    el = time.time() - t0
    print(f"compute_fbank: {len(frames)} utterances, {sum(frames.values())} frames, {audio_seconds:.1f} s of audio "
          f"in {el:.1f} s ({sum(frames.values()) / max(el, 1e-9):.0f} frames/s, RTF {el / max(audio_seconds, 1e-9):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
