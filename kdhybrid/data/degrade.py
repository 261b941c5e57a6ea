"""Acoustic degradations for the synthetic corpus, seeded per utterance.

Every utterance draws a :class:`Condition` from its own random generator, so the
corpus is the same byte for byte for one seed, whatever the number of workers:

* leading/trailing silence (always, 0.1-0.7 s each),
* reverberation: a synthetic room impulse response (exponentially decaying noise with
  a direct path), RT60 0.2-0.8 s,
* additive noise at an SNR of 0-20 dB: white, pink (1/f), brown (1/f^2), or babble
  (3-6 other utterances of the same split's babble pool, summed),
* telephone band: sox ``sinc 300-3400 rate 8000`` and back to 16 kHz,
* a level change of -20..+0 dB (peak kept below full scale),
* always, a white noise floor 45-60 dB below the speech (a microphone and line never give
  digital silence; without it the telephone band leaves log-mel bins at the log floor).

All signals are (S,) float32 at 16 kHz in [-1, 1].
"""
from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from kdhybrid.data.tts import SAMPLE_RATE

NOISE_TYPES = ("white", "pink", "brown", "babble")


@dataclass
class Condition:
    """What was done to one utterance."""

    pad_start: float = 0.0
    pad_end: float = 0.0
    reverb_rt60: Optional[float] = None
    noise: Optional[str] = None
    snr_db: Optional[float] = None
    telephone: bool = False
    gain_db: float = 0.0
    floor_db: float = 0.0  # noise floor below the speech RMS (0: none)

    @property
    def name(self) -> str:
        """Short label: ``clean``, or the degradations joined by ``+`` (``pink+reverb+tel``)."""
        parts = []
        if self.noise:
            parts.append(self.noise)
        if self.reverb_rt60:
            parts.append("reverb")
        if self.telephone:
            parts.append("tel")
        return "+".join(parts) or "clean"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["name"] = self.name
        return d


def draw_condition(rng: np.random.Generator, p_noise: float = 0.5, p_reverb: float = 0.3, p_tel: float = 0.2) -> Condition:
    c = Condition(
        pad_start=round(float(rng.uniform(0.1, 0.7)), 3),
        pad_end=round(float(rng.uniform(0.1, 0.7)), 3),
        gain_db=round(float(rng.uniform(-20.0, 0.0)), 2),
        floor_db=round(float(rng.uniform(45.0, 60.0)), 2),
    )
    if rng.random() < p_reverb:
        c.reverb_rt60 = round(float(rng.uniform(0.2, 0.8)), 3)
    if rng.random() < p_noise:
        c.noise = str(rng.choice(NOISE_TYPES, p=[0.2, 0.3, 0.2, 0.3]))
        c.snr_db = round(float(rng.uniform(0.0, 20.0)), 2)
    if rng.random() < p_tel:
        c.telephone = True
    return c


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 noise of unit RMS: white, pink (1/f power) or brown (1/f^2 power)."""
    white = rng.standard_normal(n)
    if kind == "white":
        x = white
    else:
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, d=1.0 / SAMPLE_RATE)
        f[0] = f[1] if n > 1 else 1.0
        f = np.maximum(f, 20.0)  # no runaway below 20 Hz
        spec = spec / (np.sqrt(f) if kind == "pink" else f)
        x = np.fft.irfft(spec, n)
    x = x / (np.sqrt(np.mean(x**2)) + 1e-12)
    return x.astype(np.float32)


def babble(n: int, pool: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(n,) babble of unit RMS: 3-6 random pool utterances at random offsets, looped."""
    if not pool:
        return colored_noise("pink", n, rng)
    out = np.zeros(n, dtype=np.float64)
    for _ in range(int(rng.integers(3, 7))):
        src = pool[int(rng.integers(len(pool)))]
        src = src / (np.sqrt(np.mean(src**2)) + 1e-12)
        reps = int(np.ceil((n + len(src)) / len(src)))
        loop = np.tile(src, reps)
        off = int(rng.integers(len(src)))
        out += loop[off : off + n]
    out /= np.sqrt(np.mean(out**2)) + 1e-12
    return out.astype(np.float32)


def room_impulse_response(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic RIR: direct path + exponentially decaying noise with the given RT60 (s)."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    decay = np.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    h = rng.standard_normal(n) * decay * 0.3
    h[: int(0.002 * SAMPLE_RATE)] = 0.0  # a 2 ms gap before the reflections
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[: len(x)]
    return y.astype(np.float32)


def telephone_band(x: np.ndarray) -> np.ndarray:
    """Band-limit to 300-3400 Hz through 8 kHz and back to 16 kHz, with sox."""
    cmd = [
        "sox", "-D", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(SAMPLE_RATE), "-",
        "-t", "raw", "-e", "floating-point", "-b", "32", "-", "sinc", "300-3400", "rate", "8000", "rate", str(SAMPLE_RATE),
    ]  # fmt: skip
    res = subprocess.run(cmd, input=x.astype("<f4").tobytes(), capture_output=True, check=True)
    y = np.frombuffer(res.stdout, dtype="<f4")
    out = np.zeros(len(x), dtype=np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def apply_condition(speech: np.ndarray, cond: Condition, rng: np.random.Generator, babble_pool: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Degrade clean 16 kHz ``speech`` (S,) float32 by ``cond``; returns (S',) float32 with
    S' = S + padding. Noise covers the padding too, as in a real recording."""
    x = speech.astype(np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x / peak * 0.5
    x = np.concatenate(
        [np.zeros(int(cond.pad_start * SAMPLE_RATE), np.float32), x, np.zeros(int(cond.pad_end * SAMPLE_RATE), np.float32)]
    )
    if cond.reverb_rt60:
        x = fft_convolve(x, room_impulse_response(cond.reverb_rt60, rng))
    if cond.noise:
        speech_rms = np.sqrt(np.mean(x**2)) + 1e-12
        noise = babble(len(x), babble_pool, rng) if cond.noise == "babble" else colored_noise(cond.noise, len(x), rng)
        x = x + noise * (speech_rms / (10 ** (cond.snr_db / 20.0)))
    if cond.telephone:
        x = telephone_band(x)
    if cond.floor_db:
        rms = np.sqrt(np.mean(x**2)) + 1e-12
        x = x + colored_noise("white", len(x), rng) * (rms / (10 ** (cond.floor_db / 20.0)))
    peak = float(np.max(np.abs(x))) + 1e-12
    target = 0.9 * 10 ** (cond.gain_db / 20.0)
    x = x * (min(target, 0.99) / peak)
    return x.astype(np.float32)
