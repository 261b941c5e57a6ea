"""Align one data split with a GMM-HMM (one job of steps/align.sh; gmm-align-compiled).

e.g.: python -m kdhybrid.bin.align_gmm --beam 10 --retry-beam 40 exp/tri1 data/lang \\
          data/train/split2utt/1 exp/tri1_ali/ali.1.gz
Utterances that fail to align are listed in the log and counted, never silently dropped.
"""
import argparse
import sys

from kdhybrid.gmm.align import AlignOptions, Lang, align_utterance, graph_compiler, silence_boosted_am, write_alignment_archive
from kdhybrid.gmm.feats import FeaturePipeline
from kdhybrid.gmm.model import GmmHmm
from kdhybrid.io.tables import read_text_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--beam", type=float, default=10.0)
    p.add_argument("--retry-beam", type=float, default=40.0)
    p.add_argument("--boost-silence", type=float, default=1.0)
    p.add_argument("--gmm-model", default="final", help="final, or final.alimdl (speaker-independent pass of SAT)")
    p.add_argument("--transform-dir", default=None, help="dir with the speakers' fMLLR trans.* (SAT)")
    p.add_argument("model_dir")
    p.add_argument("lang_dir")
    p.add_argument("data_dir")
    p.add_argument("ali")
    a = p.parse_args()
    from pathlib import Path

    model = GmmHmm.load(a.model_dir, name=a.gmm_model)
    pipeline = FeaturePipeline.from_model_dir(a.model_dir, a.transform_dir, a.data_dir, speaker_independent=a.gmm_model != "final")
    lang = Lang(a.lang_dir)
    gc = graph_compiler(model, lang)
    text = read_text_table(Path(a.data_dir) / "text", min_fields=1)
    am = silence_boosted_am(model, lang, a.boost_silence)
    opts = AlignOptions(beam=a.beam, retry_beam=a.retry_beam)

    def results():
        for utt, f in pipeline.iter_data_dir(a.data_dir):
            if utt not in text:
                yield utt, None, 0.0, False, f"no transcript in {a.data_dir}/text"
                continue
            graph = gc.compile_graph_from_text(lang.word_ids(text[utt].split()))
            ali, ll, r = align_utterance(model, am, graph, f, utt, opts)
            yield utt, ali, ll, r, f"failed to align with beam {a.beam} and retry beam {a.retry_beam}"

    print(write_alignment_archive(a.ali, results(), "align_gmm"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
