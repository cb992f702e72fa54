"""`facestage talk`: an avatar speaking a reply, rendered offline to an MP4 with the audio muxed in.

Timing: video frame i covers [i/fps, (i+1)/fps) and shows the mouth sampled at its middle; the audio
stream starts at pts 0 in the same container, so lips and sound share one clock. Each frame's avatar state
comes from ``Rig.frame`` (idle life: blinks, gaze, breathing; the speech timeline's mouth on top), the one
place where the CLI, the server sessions and the benches blend drivers too.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .types import Utterance
from .visemes import viseme_frames


@dataclass
class TalkResult:
    path: Path
    frames: int
    fps: float
    duration_s: float
    mouth: list[dict[str, float]]  # the ARKit mouth weights used for each frame


def render_talk(utterance: Utterance, out_path: str | Path, avatar: Any, renderer: Any, fps: float = 25.0,
                size: int = 512, background: tuple[int, int, int] = (255, 255, 255),
                blink: bool = True, seed: int = 0) -> TalkResult:
    """Render every frame of the utterance with ``renderer`` (a facestage.rendering.RenderThread).

    ``blink=False`` keeps the eyes open (the rig's idle blinks are taken out), ``seed`` picks the idle motion.
    """
    import av

    from ..avatar.rig import Rig

    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".mp4", ".mkv", ".mov"):
        raise InputError(f"talk output must be .mp4, .mkv or .mov, got {out_path.name!r}")
    if utterance.duration_s <= 0:
        raise InputError("nothing to render: the reply has no audio")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    mouth = viseme_frames(utterance.visemes, fps, utterance.duration_s)
    rig = Rig(avatar, seed=seed)
    container = av.open(str(out_path), mode="w")
    try:
        vstream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        vstream.width = vstream.height = size - size % 2
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": "20", "preset": "veryfast"}
        astream = container.add_stream("aac", rate=utterance.sample_rate)
        astream.layout = "mono"
        for i, weights in enumerate(mouth):
            state = rig.frame((i + 0.5) / fps, mouth=weights)
            if not blink:
                state.blendshapes["eyeBlinkLeft"] = state.blendshapes["eyeBlinkRight"] = 0.0
            rgba = renderer.render(avatar, state, size=size, background=background)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[:, :, :3]), format="rgb24")
            frame.pts = i
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        _mux_audio(container, astream, utterance.audio, utterance.sample_rate)
    finally:
        container.close()
    return TalkResult(out_path, len(mouth), fps, utterance.duration_s, mouth)


def _mux_audio(container: Any, stream: Any, audio: np.ndarray, sample_rate: int) -> None:
    import av

    resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
    block = 1024
    for start in range(0, len(audio), block):
        part = np.ascontiguousarray(audio[start : start + block], dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(part, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for f in resampler.resample(frame):
            for packet in stream.encode(f):
                container.mux(packet)
    for f in resampler.resample(None):
        for packet in stream.encode(f):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
