"""Phonemes → Oculus 15 visemes → ARKit mouth shapes per video frame, with coarticulation smoothing.

Timing comes from the engine's own alignments (piper's per-phoneme sample counts, espeak's phoneme
events), so visemes are exact to the sample rather than guessed from the audio.
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np

VISEMES: tuple[str, ...] = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
VISEME_INDEX = {v: i for i, v in enumerate(VISEMES)}

# IPA consonants (piper and espeak in IPA mode both speak IPA) → viseme.
_CONSONANTS: dict[str, str] = {
    **dict.fromkeys("pbmɱ", "PP"),
    **dict.fromkeys("fvʋ", "FF"),
    **dict.fromkeys("θð", "TH"),
    **dict.fromkeys("tdɾʈɖʔ", "DD"),
    **dict.fromkeys("kgɡŋxχɣqɢhɦç", "kk"),
    **dict.fromkeys("ʃʒɕʑʂʐ", "CH"),
    **dict.fromkeys("szʦʣ", "SS"),
    **dict.fromkeys("nlɲɫɭɳʎ", "nn"),
    **dict.fromkeys("ɹrɻʁɚɝ", "RR"),
    "w": "ou", "ɥ": "ou", "j": "ih",
}
_VOWELS: dict[str, str] = {
    **dict.fromkeys("aɑɐæʌä", "aa"),
    **dict.fromkeys("eɛəɜɘ", "E"),
    **dict.fromkeys("iɪɨᵻ", "ih"),
    **dict.fromkeys("oɔɒø", "oh"),
    **dict.fromkeys("uʊɯyʏɵœɤᵿ", "ou"),
}
_AFFRICATE_SECOND = {"ʃ": "CH", "ʒ": "CH", "ɕ": "CH", "ʑ": "CH", "ʂ": "CH", "ʐ": "CH", "s": "SS", "z": "SS"}
_IGNORED = set("ˈˌːˑ̃ʰʲʷ-‿͡ ˞")


def _clean(phoneme: str) -> str:
    # drop stress/length marks, tie bars and combining diacritics: they do not change the lip shape
    base = unicodedata.normalize("NFD", phoneme)
    return "".join(c for c in base if c not in _IGNORED and not unicodedata.combining(c) and not c.isdigit())


def phoneme_visemes(phoneme: str) -> list[str]:
    """The viseme sequence of one phoneme: one for a consonant, one per vowel quality for a diphthong.

    Empty or punctuation → ["sil"]. Affricates (tʃ, ts, tɕ) take the shape of their fricative release.
    """
    p = _clean(phoneme)
    if not p:
        return ["sil"]
    if len(p) >= 2 and p[0] in "td" and p[1] in _AFFRICATE_SECOND:
        return [_AFFRICATE_SECOND[p[1]]]
    if not any(c in _VOWELS for c in p):
        # a consonant cluster in one phoneme (aspirated 'ph', 'kh') looks like its first consonant
        v = _CONSONANTS.get(p[0])
        return [v] if v else ["sil"]
    out: list[str] = []
    for c in p:
        v = _VOWELS.get(c) or _CONSONANTS.get(c)
        if v and (not out or out[-1] != v):
            out.append(v)
    return out or ["sil"]


def phonemes_to_visemes(phonemes: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Timed phonemes → timed visemes; diphthongs split their time evenly, equal neighbours merge."""
    out: list[tuple[float, float, str]] = []
    for start, end, ph in phonemes:
        parts = phoneme_visemes(ph)
        step = (end - start) / len(parts)
        for k, v in enumerate(parts):
            s, e = start + k * step, start + (k + 1) * step
            if out and out[-1][2] == v and abs(out[-1][1] - s) < 1e-6:
                out[-1] = (out[-1][0], e, v)
            else:
                out.append((s, e, v))
    return out


# Each viseme as ARKit mouth/jaw weights (a hand-set table: jaw opening by vowel height, rounding by
# pucker/funnel, bilabials by pressed lips). Anything not listed stays 0. Vowels open the jaw clearly more
# than consonants: the jaw cycles once per syllable, which is what makes the mouth follow the loudness of
# the voice (measured per viseme on piper/espeak output: vowels 1.0-1.7x, consonants 0.3-0.9x the mean
# level of 'ih').
VISEME_TO_ARKIT: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"mouthClose": 0.25, "mouthPressLeft": 0.6, "mouthPressRight": 0.6, "mouthRollLower": 0.2},
    "FF": {"jawOpen": 0.05, "mouthRollLower": 0.6, "mouthUpperUpLeft": 0.3, "mouthUpperUpRight": 0.3},
    "TH": {"jawOpen": 0.12, "tongueOut": 0.4, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "DD": {"jawOpen": 0.12, "mouthStretchLeft": 0.2, "mouthStretchRight": 0.2},
    "kk": {"jawOpen": 0.15, "mouthStretchLeft": 0.15, "mouthStretchRight": 0.15},
    "CH": {"jawOpen": 0.1, "mouthFunnel": 0.5, "mouthPucker": 0.25},
    "SS": {"jawOpen": 0.05, "mouthStretchLeft": 0.35, "mouthStretchRight": 0.35,
           "mouthSmileLeft": 0.15, "mouthSmileRight": 0.15},
    "nn": {"jawOpen": 0.1, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "RR": {"jawOpen": 0.15, "mouthPucker": 0.4, "mouthFunnel": 0.3},
    "aa": {"jawOpen": 0.7, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},
    "E": {"jawOpen": 0.5, "mouthStretchLeft": 0.35, "mouthStretchRight": 0.35,
          "mouthSmileLeft": 0.1, "mouthSmileRight": 0.1},
    "ih": {"jawOpen": 0.35, "mouthStretchLeft": 0.45, "mouthStretchRight": 0.45,
           "mouthSmileLeft": 0.25, "mouthSmileRight": 0.25},
    "oh": {"jawOpen": 0.5, "mouthFunnel": 0.55, "mouthPucker": 0.2},
    "ou": {"jawOpen": 0.25, "mouthPucker": 0.75, "mouthFunnel": 0.3},
}  # fmt: skip
MOUTH_NAMES: tuple[str, ...] = tuple(sorted({k for shape in VISEME_TO_ARKIT.values() for k in shape}))
_SHAPES = np.array([[VISEME_TO_ARKIT[v].get(n, 0.0) for n in MOUTH_NAMES] for v in VISEMES], np.float32)

# Coarticulation: each viseme's activation is blurred by a Gaussian so neighbours blend (lips move toward
# the next sound before it starts). Lip closures and lip-teeth contacts are brief but must be reached, so
# they blur less. Values in seconds; 30 ms ≈ half a syllable onset, the usual range of anticipation.
_SIGMA = {v: 0.030 for v in VISEMES} | {"PP": 0.015, "FF": 0.018}
_ANTICIPATION_S = 0.015  # lips lead the sound slightly
_GRID_S = 0.002


def viseme_activations(visemes: list[tuple[float, float, str]], times: np.ndarray) -> np.ndarray:
    """Smoothed viseme weights (len(times) × 15, rows sum to 1) at the given times in seconds."""
    duration = max([float(times.max()) if len(times) else 0.0] + [e for _, e, _ in visemes]) + 0.2
    n = int(math.ceil(duration / _GRID_S)) + 1
    act = np.zeros((len(VISEMES), n), np.float32)
    act[VISEME_INDEX["sil"]] = 1.0  # time not covered by any viseme is silence
    for start, end, v in visemes:
        a, b = int(round(start / _GRID_S)), int(round(end / _GRID_S))
        if b > a:
            act[:, a:b] = 0.0
            act[VISEME_INDEX[v], a:b] = 1.0
    smooth = np.empty_like(act)
    for i, v in enumerate(VISEMES):
        sigma = _SIGMA[v] / _GRID_S
        half = int(3 * sigma) + 1
        k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
        smooth[i] = np.convolve(np.pad(act[i], half, mode="edge"), k / k.sum(), mode="valid")
    smooth /= np.maximum(smooth.sum(axis=0, keepdims=True), 1e-6)
    idx = np.clip(np.round((times + _ANTICIPATION_S) / _GRID_S).astype(int), 0, n - 1)
    return smooth[:, idx].T


def viseme_frames(visemes: list[tuple[float, float, str]], fps: float, duration: float) -> list[dict[str, float]]:
    """ARKit mouth weights for each video frame of a clip of ``duration`` seconds at ``fps``.

    Frame i is shown during [i/fps, (i+1)/fps) and sampled at its middle. Every dict has the same keys
    (MOUTH_NAMES), so consumers can rely on them.
    """
    if fps <= 0:
        raise ValueError("fps must be positive")
    count = max(int(round(duration * fps)), 0)
    if count == 0:
        return []
    times = (np.arange(count) + 0.5) / fps
    weights = viseme_activations(visemes, times) @ _SHAPES
    return [{name: round(float(w), 4) for name, w in zip(MOUTH_NAMES, row, strict=True)} for row in weights]


def viseme_weight_frames(visemes: list[tuple[float, float, str]], fps: float, duration: float,
                         floor: float = 0.02) -> list[dict[str, float]]:
    """Co-articulated viseme weights ({"aa": 0.7, "oh": 0.3}) per video frame, for a rig to turn into ARKit
    shapes (``Rig.speak``): the same sampling as :func:`viseme_frames`, before the shape table. Weights
    under ``floor`` are dropped (they move no vertex visibly) and the rest renormalised."""
    if fps <= 0:
        raise ValueError("fps must be positive")
    count = max(int(round(duration * fps)), 0)
    if count == 0:
        return []
    act = viseme_activations(visemes, (np.arange(count) + 0.5) / fps)
    out = []
    for row in act:
        keep = {VISEMES[i]: float(w) for i, w in enumerate(row) if w >= floor}
        total = sum(keep.values()) or 1.0
        out.append({k: round(v / total, 4) for k, v in keep.items()})
    return out


def mouth_opening(weights: dict[str, float]) -> float:
    """A scalar 'how open is the mouth' used by checks and simple 2D avatars."""
    return weights.get("jawOpen", 0.0) + 0.5 * weights.get("mouthLowerDownLeft", 0.0) - 0.5 * weights.get(
        "mouthPressLeft", 0.0
    )
