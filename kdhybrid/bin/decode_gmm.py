"""Decode a data dir with a GMM-HMM and Kaldi's LatticeFasterDecoder (kaldi-hmm-gmm), and
score it: <decode-dir>/{hyp.txt,wer.json,best_wer}.

e.g.: python -m kdhybrid.bin.decode_gmm exp/tri1/graph_tgsmall data/dev exp/tri1/decode_dev
"""
import argparse
import json
import sys
import time
from pathlib import Path

from kdhybrid.decode.kaldi_backend import DecoderOptions, KaldiDecoder
from kdhybrid.decode.scoring import kaldi_wer_line, score_decode_dir
from kdhybrid.gmm.feats import GmmFeatConfig, iter_gmm_features
from kdhybrid.gmm.model import GmmHmm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--acwt", type=float, default=0.1)
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--model-dir", default=None, help="default: the parent of the decode dir")
    p.add_argument("graph_dir")
    p.add_argument("data_dir")
    p.add_argument("decode_dir")
    a = p.parse_args()
    dec_dir = Path(a.decode_dir)
    dec_dir.mkdir(parents=True, exist_ok=True)
    model_dir = Path(a.model_dir) if a.model_dir else dec_dir.parent
    model = GmmHmm.load(model_dir)
    fc = GmmFeatConfig(**json.loads((model_dir / "feat_opts.json").read_text()))
    words = {int(l.split()[1]): l.split()[0] for l in (Path(a.graph_dir) / "words.txt").read_text().splitlines()}
    decoder = KaldiDecoder(str(Path(a.graph_dir) / "HCLG.fst"), DecoderOptions(acwt=a.acwt, beam=a.beam, max_active=a.max_active))
    hyps = {}
    t0 = time.time()
    frames = 0
    failed = 0
    for utt, f in iter_gmm_features(a.data_dir, fc):
        ok, _, wids, _ = decoder.decode_gmm(model.am, model.tm, f, utt)
        failed += int(not ok)
        hyps[utt] = " ".join(words[w] for w in wids)
        frames += f.shape[0]
    elapsed = time.time() - t0
    extra = dict(rtf=round(elapsed / max(frames * 0.01, 1e-9), 4), no_final_state=failed, acwt=a.acwt, beam=a.beam)
    c = score_decode_dir(a.data_dir, dec_dir, hyps, extra)
    print(f"decode_gmm: {a.data_dir}: {kaldi_wer_line(c)}, RTF {c['rtf']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
