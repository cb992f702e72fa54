"""`facestage talk`: the avatar speaking a reply, checked end to end on the MP4 it writes — the mouth
(pixels) follows the audio envelope (samples) and audio and video stay within one frame."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

FPS = 25


@pytest.fixture(scope="module")
def talk_video(tmp_path_factory):
    out = tmp_path_factory.mktemp("talk") / "answer.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "facestage", "talk", "--brand", "demo", "--profiles",
         str(out.parent / "p.sqlite3"), "Do you deliver to Northbridge?", "-o", str(out), "--size", "192",
         "--fps", str(FPS)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Northbridge" in proc.stdout  # the FAQ answer was spoken
    return out


def _decode(path):
    import av

    with av.open(str(path)) as c:
        starts = [float(st.start_time * st.time_base) for st in c.streams if st.start_time is not None]
        assert starts and max(starts) - min(starts) <= 1.0 / FPS, starts  # both streams start together
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate = stream.rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return np.stack(frames), audio, rate


def test_talk_video_has_audio_in_sync_and_the_mouth_follows_the_voice(talk_video):
    frames, audio, rate = _decode(talk_video)
    video_s, audio_s = len(frames) / FPS, len(audio) / rate
    assert audio_s > 2.0 and np.abs(audio).max() > 0.05  # real speech, not silence
    # AAC adds at most one priming/padding block (1024 samples = 46 ms at 22 kHz), i.e. about one frame
    assert abs(video_s - audio_s) <= 1.0 / FPS + 1024 / rate, (video_s, audio_s)

    # the mouth region: the pixels of the lower half that change most over the clip; its opening is the
    # distance from the last frame (trailing silence: the mouth at rest)
    h = frames.shape[1]
    lower = frames[:, h // 2 :, :]
    var = lower.var(axis=0)
    mask = var >= np.percentile(var, 98)
    opening = np.abs(lower - lower[-1])[:, mask].mean(axis=1)
    n = len(frames)
    # loudness around each frame's middle over 80 ms (the mouth moves on a syllable scale, not per sample)
    mid, half = (np.arange(n) + 0.5) * rate / FPS, 0.04 * rate
    env = np.array([np.sqrt(np.mean(audio[int(max(m - half, 0)) : int(m + half)] ** 2) + 1e-12) for m in mid])

    def corr(lag: int) -> float:
        a, b = (opening[lag:], env[: n - lag]) if lag >= 0 else (opening[: n + lag], env[-lag:])
        return float(np.corrcoef(a, b)[0, 1])

    lags = {lag: corr(lag) for lag in range(-4, 5)}
    best = max(lags, key=lags.get)
    print("mouth/audio correlation by lag (frames):", {k: round(v, 2) for k, v in lags.items()})
    # measured 0.45-0.6 on piper speech (the jaw follows syllables, not every loudness change); a video
    # whose lips were off by two frames or more would peak elsewhere
    assert lags[0] >= 0.35, lags
    assert abs(best) <= 1, f"lips and audio are {best} frames apart"


@pytest.mark.parametrize(("extra", "message"), [
    (["-o", "x.gif"], "must be .mp4"),
    (["-o", "x.mp4", "--avatar", "nobody"], "unknown avatar 'nobody'"),
    (["-o", "x.mp4", "--size", "10"], "--size"),
])  # fmt: skip
def test_talk_rejects_bad_options_clearly(tmp_path, extra, message):
    proc = subprocess.run([sys.executable, "-m", "facestage", "talk", "--profiles", str(tmp_path / "p.sqlite3"),
                           "hello", *[str(tmp_path / a) if a.startswith("x.") else a for a in extra]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-500:]
