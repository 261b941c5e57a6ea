"""Kaldi-compatible log-mel filterbank features with kaldi-native-fbank.

Options are read from a Kaldi config file (``conf/fbank.conf``: ``--num-mel-bins=40``
lines, Kaldi's option names), so a recipe's config means the same thing to
``compute-fbank-feats`` and to us. Audio is read through lhotse (``Recording`` objects
from a Kaldi ``wav.scp``: files or ``cmd |`` pipes) and scaled to 16-bit integer range,
as Kaldi reads WAV files, so features equal Kaldi's ``compute-fbank-feats`` output.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Tuple, Union

import numpy as np

Pathlike = Union[str, Path]

# Kaldi option name -> (section, kaldi-native-fbank attribute, type)
_KALDI_OPTIONS = {
    "sample-frequency": ("frame", "samp_freq", float),
    "frame-shift": ("frame", "frame_shift_ms", float),
    "frame-length": ("frame", "frame_length_ms", float),
    "dither": ("frame", "dither", float),
    "preemphasis-coefficient": ("frame", "preemph_coeff", float),
    "remove-dc-offset": ("frame", "remove_dc_offset", "bool"),
    "window-type": ("frame", "window_type", str),
    "round-to-power-of-two": ("frame", "round_to_power_of_two", "bool"),
    "blackman-coeff": ("frame", "blackman_coeff", float),
    "snip-edges": ("frame", "snip_edges", "bool"),
    "num-mel-bins": ("mel", "num_bins", int),
    "low-freq": ("mel", "low_freq", float),
    "high-freq": ("mel", "high_freq", float),
    "vtln-low": ("mel", "vtln_low", float),
    "vtln-high": ("mel", "vtln_high", float),
    "debug-mel": ("mel", "debug_mel", "bool"),
    "use-energy": ("top", "use_energy", "bool"),
    "energy-floor": ("top", "energy_floor", float),
    "raw-energy": ("top", "raw_energy", "bool"),
    "htk-compat": ("top", "htk_compat", "bool"),
    "use-log-fbank": ("top", "use_log_fbank", "bool"),
    "use-power": ("top", "use_power", "bool"),
}


@dataclass
class FbankConfig:
    """Kaldi ``compute-fbank-feats`` options (Kaldi's defaults, Kaldi's names with ``_``)."""

    sample_frequency: float = 16000.0
    frame_shift: float = 10.0
    frame_length: float = 25.0
    dither: float = 1.0
    preemphasis_coefficient: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    round_to_power_of_two: bool = True
    blackman_coeff: float = 0.42
    snip_edges: bool = True
    num_mel_bins: int = 23
    low_freq: float = 20.0
    high_freq: float = 0.0
    vtln_low: float = 100.0
    vtln_high: float = -500.0
    debug_mel: bool = False
    use_energy: bool = False
    energy_floor: float = 0.0
    raw_energy: bool = True
    htk_compat: bool = False
    use_log_fbank: bool = True
    use_power: bool = True

    @classmethod
    def from_kaldi_conf(cls, path: Pathlike) -> "FbankConfig":
        """Read ``--name=value`` lines (comments after ``#``); unknown options are errors."""
        cfg = cls()
        for lineno, raw in enumerate(Path(path).read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if not line.startswith("--") or "=" not in line:
                raise ValueError(f"{path}:{lineno}: expected --name=value, got {raw!r}")
            name, value = line[2:].split("=", 1)
            if name not in _KALDI_OPTIONS:
                raise ValueError(f"{path}:{lineno}: unknown fbank option --{name}")
            typ = _KALDI_OPTIONS[name][2]
            if typ == "bool":
                if value not in ("true", "false"):
                    raise ValueError(f"{path}:{lineno}: --{name} takes true or false, got {value!r}")
                v: object = value == "true"
            else:
                try:
                    v = typ(value)
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: bad value {value!r} for --{name}") from None
            setattr(cfg, name.replace("-", "_"), v)
        return cfg

    def to_knf(self):
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        for name, (section, attr, _) in _KALDI_OPTIONS.items():
            target = opts.frame_opts if section == "frame" else opts.mel_opts if section == "mel" else opts
            setattr(target, attr, getattr(self, name.replace("-", "_")))
        return opts

    @property
    def dim(self) -> int:
        return self.num_mel_bins + (1 if self.use_energy else 0)


def num_frames(num_samples: int, cfg: FbankConfig) -> int:
    """Frames Kaldi produces for ``num_samples`` samples (``snip_edges`` aware)."""
    shift = int(cfg.sample_frequency * cfg.frame_shift / 1000)
    length = int(cfg.sample_frequency * cfg.frame_length / 1000)
    if cfg.snip_edges:
        return 0 if num_samples < length else 1 + (num_samples - length) // shift
    return (num_samples + shift // 2) // shift


def compute_fbank(samples: np.ndarray, cfg: FbankConfig, opts=None) -> np.ndarray:
    """Filterbank features of one utterance.

    :param samples: (S,) float waveform in 16-bit integer range (as Kaldi reads WAV).
    :param opts: a prebuilt ``knf.FbankOptions`` (from ``cfg.to_knf()``) to skip rebuilding.
    :return: (T, dim) float32, T = :func:`num_frames` (S).
    """
    import kaldi_native_fbank as knf

    fb = knf.OnlineFbank(opts if opts is not None else cfg.to_knf())
    fb.accept_waveform(cfg.sample_frequency, np.ascontiguousarray(samples, dtype=np.float32))
    fb.input_finished()
    n = fb.num_frames_ready
    if n == 0:
        return np.zeros((0, cfg.dim), dtype=np.float32)
    return np.stack([fb.get_frame(i) for i in range(n)]).astype(np.float32, copy=False)


def iter_data_dir_audio(data_dir: Pathlike, sample_rate: int) -> Iterator[Tuple[str, np.ndarray]]:
    """(utterance id, (S,) float32 samples in 16-bit range) for every utterance of a
    Kaldi data dir, read through lhotse (wav.scp files or pipes; segments honoured).

    :raises RuntimeError: naming the utterance and its wav.scp entry when audio cannot be read.
    """
    from lhotse.kaldi import load_kaldi_data_dir

    from kdhybrid.io.tables import read_text_table

    data_dir = Path(data_dir)
    try:
        recordings, supervisions, _ = load_kaldi_data_dir(data_dir, sampling_rate=sample_rate)
    except Exception as e:  # lhotse probes every entry without reco2dur; name the one that failed
        msg = str(e)
        entries = read_text_table(data_dir / "wav.scp")
        # an entry whose file paths (or whole text) the message quotes (not its program: every pipe starts with sox)
        culprit = next((k for k, v in entries.items() if v in msg or any(t in msg for t in v.split() if "/" in t)), None)
        why = _source_error(entries[culprit]) if culprit else ""
        if culprit is None:  # lhotse's message names none: ask the first entries, in order, until one complains
            culprit, why = next(((k, w) for k, v in list(entries.items())[:20] for w in [_source_error(v)] if w), (None, ""))
        who = f"recording '{culprit}'" if culprit else "an entry"
        raise RuntimeError(f"{data_dir}/wav.scp: {who}: cannot read audio: {msg.splitlines()[0]}{why}") from e
    if supervisions is None:
        for rec in recordings:
            yield rec.id, _load(rec, data_dir, rec.id, None, None)
    else:
        for sup in supervisions:
            rec = recordings[sup.recording_id]
            yield sup.id, _load(rec, data_dir, sup.id, sup.start, sup.duration)


def _source_error(entry: str) -> str:
    """What the source of a wav.scp entry says about itself, for an error message: a missing
    file, or the last line a failing pipe's commands wrote to stderr (a decoder only sees empty
    or truncated data and reports a format error); "" when the source looks fine."""
    import subprocess

    entry = entry.strip()
    if not entry.endswith("|"):
        return "" if Path(entry).is_file() else f" (no such file: {entry})"
    try:
        r = subprocess.run(["bash", "-o", "pipefail", "-c", entry[:-1]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    err = [line for line in r.stderr.decode(errors="replace").splitlines() if line.strip()]
    if r.returncode == 0:
        return ""
    return f" (the pipe failed: {err[-1].strip()})" if err else f" (the pipe exited with status {r.returncode})"


def _load(rec, data_dir: Path, utt: str, offset, duration) -> np.ndarray:
    try:
        audio = rec.load_audio(offset=offset or 0.0, duration=duration)
    except Exception as e:
        src = rec.sources[0].source if rec.sources else "?"
        why = _source_error(src + " |" if rec.sources and rec.sources[0].type == "command" else src)
        raise RuntimeError(f"{data_dir}/wav.scp: utterance '{utt}': cannot read audio from {src!r}: {e}{why}") from e
    if audio.ndim == 2:
        if audio.shape[0] != 1:
            raise RuntimeError(f"{data_dir}/wav.scp: utterance '{utt}': {audio.shape[0]} channels, expected 1")
        audio = audio[0]
    return audio.astype(np.float32) * 32768.0
