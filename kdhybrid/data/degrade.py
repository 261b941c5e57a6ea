"""Acoustic degradations for the synthetic corpus, seeded per utterance.

Every split is a multi-condition set in the manner of Aurora-4 and CHiME: a fixed share of
clean speech, most of the rest one degradation at a moderate level, a few combinations. The
shares and the levels are one table, :data:`CONDITION_MIX` (a :class:`ConditionMix`):

* ``clean`` 40%: no degradation;
* ``noise`` 25%: additive noise at an SNR of 5-20 dB: white, pink (1/f), brown (1/f^2), or
  babble (3-6 other utterances of the corpus's babble pool, summed);
* ``reverb`` 15%: a synthetic room impulse response (exponentially decaying noise with a
  direct path), RT60 0.2-0.6 s;
* ``tel`` 10%: telephone band, sox ``sinc 300-3400 rate 8000`` and back to 16 kHz;
* ``noise+reverb`` 5% and ``noise+tel`` 5%: both, at the same levels.

:func:`assign_kinds` deals a split's utterances their kinds by quota (the split has the table's
mix to within one utterance a kind) in a seeded order; :func:`draw_condition` then draws the
levels of one utterance from its own random generator, so the corpus is the same byte for byte
for one seed, whatever the number of workers. Every utterance also gets

* leading/trailing silence (0.1-0.7 s each),
* a level change of -20..+0 dB (peak kept below full scale),
* a white noise floor 45-60 dB below the speech (a microphone and line never give digital
  silence; without it the telephone band leaves log-mel bins at the log floor).

All signals are (S,) float32 at 16 kHz in [-1, 1].
"""
from __future__ import annotations

import random
import subprocess
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdhybrid.data.tts import SAMPLE_RATE

NOISE_TYPES = ("white", "pink", "brown", "babble")
DEGRADATIONS = ("noise", "reverb", "tel")


@dataclass(frozen=True)
class ConditionMix:
    """The condition design of every split: the share of each kind of condition and the
    levels its degradations are drawn at (uniformly within each range).

    A kind is ``clean`` or degradations of :data:`DEGRADATIONS` joined by ``+`` in that order
    (``noise+reverb``): what :attr:`Condition.kind` gives back for an utterance.
    """

    kinds: Tuple[Tuple[str, float], ...]  # (kind, share); the shares sum to 1
    snr_db: Tuple[float, float]  # additive noise: SNR range (dB)
    rt60: Tuple[float, float]  # reverberation: RT60 range (s)
    noise_types: Tuple[Tuple[str, float], ...]  # (noise type, probability) of a noisy utterance

    def __post_init__(self) -> None:
        for kind, share in self.kinds:
            parts = [] if kind == "clean" else kind.split("+")
            if kind != "clean" and (not parts or any(p not in DEGRADATIONS for p in parts) or
                                    parts != sorted(parts, key=DEGRADATIONS.index) or len(set(parts)) != len(parts)):
                raise ValueError(f"ConditionMix: bad kind {kind!r} (clean, or {'/'.join(DEGRADATIONS)} joined by + in that order)")
            if share < 0:
                raise ValueError(f"ConditionMix: negative share of {kind}")
        for name, ps in (("kinds", self.kinds), ("noise_types", self.noise_types)):
            if abs(sum(p for _, p in ps) - 1.0) > 1e-9:
                raise ValueError(f"ConditionMix: the {name} shares sum to {sum(p for _, p in ps)}, not 1")
        if any(t not in NOISE_TYPES for t, _ in self.noise_types):
            raise ValueError(f"ConditionMix: noise types must be among {NOISE_TYPES}")

    def share(self, kind: str) -> float:
        return dict(self.kinds).get(kind, 0.0)

    def to_dict(self) -> dict:
        return {"kinds": dict(self.kinds), "snr_db": list(self.snr_db), "rt60": list(self.rt60),
                "noise_types": dict(self.noise_types)}


# The corpus's design: 40% clean, 50% one degradation at a moderate level, 10% two.
CONDITION_MIX = ConditionMix(
    kinds=(
        ("clean", 0.40),
        ("noise", 0.25),
        ("reverb", 0.15),
        ("tel", 0.10),
        ("noise+reverb", 0.05),
        ("noise+tel", 0.05),
    ),
    snr_db=(5.0, 20.0),
    rt60=(0.2, 0.6),
    noise_types=(("white", 0.2), ("pink", 0.3), ("brown", 0.2), ("babble", 0.3)),
)


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

    @property
    def kind(self) -> str:
        """The kind of :class:`ConditionMix`: ``clean``, ``noise``, ``noise+tel`` ..."""
        parts = [n for n, on in zip(DEGRADATIONS, (self.noise, self.reverb_rt60, self.telephone)) if on]
        return "+".join(parts) or "clean"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["name"] = self.name
        d["kind"] = self.kind
        return d


def assign_kinds(n: int, seed: int, mix: ConditionMix = CONDITION_MIX) -> List[str]:
    """The condition kinds of a split's ``n`` utterances, in utterance order: each kind's
    quota ``share * n`` rounded by largest remainder (so every kind is within one utterance
    of its share, and the quotas sum to ``n``), dealt in an order shuffled by ``seed``."""
    exact = [(kind, share * n) for kind, share in mix.kinds]
    quota = {kind: int(x) for kind, x in exact}
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i][1] - int(exact[i][1])), i))
    for i in by_remainder[: n - sum(quota.values())]:
        quota[exact[i][0]] += 1
    kinds = [kind for kind, _ in mix.kinds for _ in range(quota[kind])]
    random.Random(seed).shuffle(kinds)
    return kinds


def draw_condition(rng: np.random.Generator, kind: str = "clean", mix: ConditionMix = CONDITION_MIX) -> Condition:
    """One utterance's condition of ``kind`` (see :class:`ConditionMix`): padding, level and
    noise floor always, the kind's degradations at levels drawn from ``mix``'s ranges."""
    parts = set() if kind == "clean" else set(kind.split("+"))
    if parts - set(DEGRADATIONS):
        raise ValueError(f"draw_condition: bad kind {kind!r}")
    c = Condition(
        pad_start=round(float(rng.uniform(0.1, 0.7)), 3),
        pad_end=round(float(rng.uniform(0.1, 0.7)), 3),
        gain_db=round(float(rng.uniform(-20.0, 0.0)), 2),
        floor_db=round(float(rng.uniform(45.0, 60.0)), 2),
    )
    if "reverb" in parts:
        c.reverb_rt60 = round(float(rng.uniform(*mix.rt60)), 3)
    if "noise" in parts:
        types, probs = zip(*mix.noise_types)
        c.noise = str(rng.choice(types, p=probs))
        c.snr_db = round(float(rng.uniform(*mix.snr_db)), 2)
    c.telephone = "tel" in parts
    return c


def summarize_conditions(conditions: Sequence[Condition], mix: ConditionMix = CONDITION_MIX) -> dict:
    """A split's condition mix: utterances and share per kind (every kind of ``mix``, zeros
    included), noise types, and the range and mean of the SNRs and RT60s drawn."""
    n = max(len(conditions), 1)
    kinds: Dict[str, int] = {k: 0 for k, _ in mix.kinds}
    noise: Dict[str, int] = {}
    for c in conditions:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
        if c.noise:
            noise[c.noise] = noise.get(c.noise, 0) + 1

    def rng_of(xs: List[float]) -> Optional[dict]:
        return {"min": min(xs), "mean": round(float(np.mean(xs)), 2), "max": max(xs), "n": len(xs)} if xs else None

    return {
        "kinds": kinds,
        "shares": {k: round(v / n, 3) for k, v in kinds.items()},
        "degraded_twice_or_more": round(sum(v for k, v in kinds.items() if "+" in k) / n, 3),
        "noise_types": dict(sorted(noise.items())),
        "snr_db": rng_of([c.snr_db for c in conditions if c.noise]),
        "rt60": rng_of([c.reverb_rt60 for c in conditions if c.reverb_rt60]),
    }


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
