"""Speech from the Debian TTS engines: voices, speaker profiles, synthesis.

A *voice* is one engine's base voice (``espeak:en-gb-scotland``, ``flite:slt``,
``festival:kal_diphone``). A *speaker* is a voice plus a fixed, seeded profile: espeak's
variant, pitch and rate; flite's pitch and duration stretch; festival's duration stretch;
and for every engine a sox ``speed`` factor and ``pitch`` shift. So a handful of engines
gives as many speakers as a corpus needs, of both sexes.

:func:`synthesize` returns 16 kHz float32 samples and, for flite and festival, the phone
timings the synthesiser used (seconds, already scaled for the sox speed change): the
reference alignment that the GMM issue scores its boundaries against.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdhybrid.data.text import FESTIVAL_TO_ARPABET, MissingToolError, require_debian

SAMPLE_RATE = 16000

# (engine, base voice) -> sex of the base voice.
TRAIN_VOICES: Dict[str, str] = {
    "espeak:en-us": "?",
    "espeak:en-gb": "?",
    "espeak:en-gb-scotland": "?",
    "espeak:en-gb-x-rp": "?",
    "espeak:en-gb-x-gbclan": "?",
    "espeak:en-us-nyc": "?",
    "flite:slt": "F",
    "flite:awb": "M",
    "flite:kal16": "M",
    "festival:kal_diphone": "M",
    "festival:cmu_us_slt_arctic_hts": "F",
}
# Voices never heard in training: the test_heldout split.
HELDOUT_VOICES: Dict[str, str] = {
    "espeak:en-029": "?",
    "espeak:en-gb-x-gbcwmd": "?",
    "flite:rms": "M",
    "festival:ked_diphone": "M",
}
ESPEAK_VARIANTS = {**{f"m{i}": "M" for i in range(1, 8)}, **{f"f{i}": "F" for i in range(1, 6)}}
ENGINE_PACKAGES = {
    "espeak": ("espeak-ng", "espeak-ng"),
    "flite": ("flite", "flite"),
    "festival": ("festival", "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"),
    "sox": ("sox", "sox"),
}


@dataclass(frozen=True)
class SpeakerProfile:
    """One synthetic speaker: a base voice and fixed settings."""

    speaker_id: str
    voice: str  # "engine:name"
    sex: str  # "M" or "F"
    variant: str = ""  # espeak voice variant (m1..m7, f1..f5)
    pitch: int = 50  # espeak -p (0-99); flite f0 mean in Hz
    rate: float = 1.0  # speaking-rate factor: espeak wpm = 175 * rate; flite/festival stretch = 1/rate
    speed: float = 1.0  # sox speed (tempo and pitch together)
    pitch_shift: int = 0  # sox pitch, cents

    @property
    def engine(self) -> str:
        return self.voice.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.voice.split(":", 1)[1]

    def to_dict(self) -> dict:
        return asdict(self)


def make_profile(speaker_id: str, voice: str, base_sex: str, rng: np.random.Generator) -> SpeakerProfile:
    """Draw a speaker's fixed settings for ``voice`` from ``rng``."""
    engine = voice.split(":", 1)[0]
    variant = ""
    if engine == "espeak":
        variant = str(rng.choice(sorted(ESPEAK_VARIANTS)))
        sex = ESPEAK_VARIANTS[variant]
        pitch = int(rng.integers(25, 75)) if sex == "M" else int(rng.integers(45, 90))
    elif engine == "flite":
        sex = base_sex
        pitch = int(rng.integers(90, 140)) if sex == "M" else int(rng.integers(160, 230))
    else:
        sex = base_sex
        pitch = 0
    return SpeakerProfile(
        speaker_id=speaker_id,
        voice=voice,
        sex=sex,
        variant=variant,
        pitch=pitch,
        rate=round(float(rng.uniform(0.85, 1.2)), 3),
        speed=round(float(rng.uniform(0.93, 1.07)), 3),
        pitch_shift=int(rng.integers(-150, 151)),
    )


def check_engines(voices: Sequence[str]) -> None:
    """Raise :class:`MissingToolError` with the apt command for a missing engine or voice."""
    require_debian("sox", "sox")
    for v in voices:
        engine, name = v.split(":", 1)
        cmd, pkg = ENGINE_PACKAGES[engine]
        require_debian(cmd, pkg)
        if engine == "festival":
            for d in ("/usr/share/festival/voices/english", "/usr/share/festival/voices/us"):
                if os.path.isdir(os.path.join(d, name)):
                    break
            else:
                pkgs = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k", "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
                raise MissingToolError(
                    f"festival voice {name} not found: install it with: sudo apt-get install -y {pkgs.get(name, 'festvox-*')}"
                )


class SynthesisError(RuntimeError):
    pass


def _sox_to_16k(wav: str, profile: SpeakerProfile) -> np.ndarray:
    """Read ``wav``, apply the profile's speed/pitch, resample to 16 kHz mono float32."""
    effects: List[str] = []
    if profile.speed != 1.0:
        effects += ["speed", f"{profile.speed}"]
    if profile.pitch_shift:
        effects += ["pitch", f"{profile.pitch_shift}"]
    effects += ["rate", "-h", str(SAMPLE_RATE)]
    cmd = ["sox", "-D", wav, "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-"] + effects
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        raise SynthesisError(f"sox failed on {wav}: {res.stderr.decode(errors='replace').strip()}")
    return np.frombuffer(res.stdout, dtype="<f4").copy()


def _phones_from_ends(pairs: Sequence[Tuple[str, float]], speed: float) -> List[Tuple[str, float, float]]:
    """``[(festival phone, end time)]`` -> ``[(ARPAbet phone or SIL, start, end)]`` scaled by 1/speed."""
    out: List[Tuple[str, float, float]] = []
    start = 0.0
    for ph, end in pairs:
        mapped = FESTIVAL_TO_ARPABET.get(ph, "?") if ph != "pau" else "SIL"
        if mapped is None:
            mapped = "SIL"
        out.append((mapped, round(start / speed, 4), round(end / speed, 4)))
        start = end
    return out


def synthesize(profile: SpeakerProfile, texts: Sequence[str]) -> List[Tuple[Optional[np.ndarray], Optional[list], str]]:
    """Synthesise each text with the speaker's voice.

    :return: per text, (samples (S,) float32 at 16 kHz or None, phone timings or None, error
        message or ""). A failed sentence gives None and its message: callers skip and count it.
    """
    with tempfile.TemporaryDirectory(prefix="kdh-tts-") as tmp:
        if profile.engine == "festival":
            return _festival(profile, texts, tmp)
        out = []
        for i, text in enumerate(texts):
            wav = os.path.join(tmp, f"{i}.wav")
            try:
                phones = None
                if profile.engine == "espeak":
                    voice = f"{profile.name}+{profile.variant}" if profile.variant else profile.name
                    cmd = ["espeak-ng", "-v", voice, "-p", str(profile.pitch), "-s", str(int(175 * profile.rate)), "-w", wav, text.lower()]
                    res = subprocess.run(cmd, capture_output=True, text=True)
                elif profile.engine == "flite":
                    cmd = [
                        "flite", "-voice", profile.name, "-psdur",
                        "--setf", f"duration_stretch={1.0 / profile.rate:.3f}",
                        "--setf", f"int_f0_target_mean={profile.pitch}",
                        "-t", text.lower(), "-o", wav,
                    ]  # fmt: skip
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    pairs = [(m.group(1), float(m.group(2))) for m in re.finditer(r"(\w+):([\d.]+)", res.stdout)]
                    phones = _phones_from_ends(pairs, profile.speed) if pairs else None
                else:
                    raise ValueError(f"unknown engine {profile.engine}")
                if res.returncode != 0 or not os.path.exists(wav) or os.path.getsize(wav) <= 44:
                    raise SynthesisError(f"{profile.voice} produced no audio: {res.stderr.strip()[:200]}")
                out.append((_sox_to_16k(wav, profile), phones, ""))
            except (SynthesisError, OSError) as e:
                out.append((None, None, str(e)))
        return out


def _festival(profile: SpeakerProfile, texts: Sequence[str], tmp: str) -> list:
    """All texts of one speaker in one festival process (its start-up dominates otherwise)."""
    lines = [f"(voice_{profile.name})", f"(Parameter.set 'Duration_Stretch {1.0 / profile.rate:.3f})"]
    for i, text in enumerate(texts):
        wav = os.path.join(tmp, f"{i}.wav")
        clean = text.lower().replace('"', "").replace("\\", "")
        lines.append(
            f'(set! u (SynthText "{clean}")) (utt.save.wave u "{wav}" \'riff) '
            f'(format t "SEG {i}") '
            f'(mapcar (lambda (s) (format t " %s:%.4f" (item.name s) (item.feat s "end"))) (utt.relation.items u \'Segment)) '
            f'(format t "\\n")'
        )
    res = subprocess.run(["festival", "--pipe"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    segs: Dict[int, list] = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^SEG (\d+)(.*)$", line)
        if m:
            segs[int(m.group(1))] = [(a, float(b)) for a, b in re.findall(r"(\w+):([\d.]+)", m.group(2))]
    out = []
    for i in range(len(texts)):
        wav = os.path.join(tmp, f"{i}.wav")
        if not os.path.exists(wav) or os.path.getsize(wav) <= 44:
            out.append((None, None, f"festival {profile.name} produced no audio: {res.stderr.strip()[-200:]}"))
            continue
        try:
            out.append((_sox_to_16k(wav, profile), _phones_from_ends(segs.get(i, []), profile.speed) or None, ""))
        except SynthesisError as e:
            out.append((None, None, str(e)))
    return out
