"""Drive an avatar from a video: track → rig → render → encode, one frame at a time."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from .model import Avatar
from .rig import Rig


def mouth_open_ratio(landmarks: np.ndarray) -> float:
    """Inner-lip gap over face height (forehead 10 → chin 152): a scale-free mouth opening."""
    return float(np.linalg.norm(landmarks[13, :2] - landmarks[14, :2]) /
                 max(np.linalg.norm(landmarks[10, :2] - landmarks[152, :2]), 1e-6))


def drive_video(input_path: str | Path, avatar: Avatar, output: str | Path | None, size: int = 384,
                side_by_side: bool = False, framing: str = "head", renderer: str = "moderngl",
                max_frames: int | None = None, background=(0.12, 0.13, 0.19), progress: bool = False,
                keep_frames: bool = False) -> dict:
    """Render ``avatar`` performing the face in ``input_path``; write ``output`` (mp4) when given.

    Returns stats plus per-frame records: the input's mouth opening, the rig's jawOpen and, with
    ``keep_frames``, the rendered RGB frames (for tests and further processing).
    """
    import cv2

    from ..mediaio import VideoWriter, open_source
    from ..rendering import RenderThread
    from ..tracking import FaceTracker

    src = open_source(str(input_path))
    if src.kind == "camera":
        raise InputError("drive takes a video file, not a camera")
    rig = Rig(avatar)
    rt = RenderThread(size=size, backend=renderer, msaa=0)
    writer = None
    records: list[dict] = []
    frames_out: list[np.ndarray] = []
    total = src.frame_count if max_frames is None else min(src.frame_count or max_frames, max_frames)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=f"driving {avatar.name}")
    t0 = time.perf_counter()
    tracked = 0
    calibrated = False
    try:
        with FaceTracker(max_faces=1) as tracker:
            for i, t, frame in src.frames():
                if max_frames is not None and i >= max_frames:
                    break
                faces = tracker.track(frame, t)
                if faces:
                    face = faces[0]
                    if not calibrated:
                        calibrated = True  # first frame's pose = straight ahead for this camera
                        rig.neutral_pose = (face.pose.yaw, face.pose.pitch, face.pose.roll)
                    tracked += 1
                    mouth = mouth_open_ratio(face.landmarks)
                else:
                    face = None
                    mouth = float("nan")
                state = rig.frame(t, face=face)  # the one puppet pipeline: tracked face or idle life
                rgba = rt.render(avatar, state, size=size, background=background, framing=framing)
                out = np.ascontiguousarray(rgba[:, :, 2::-1])  # RGB(A) → BGR
                if side_by_side:
                    h, w = frame.shape[:2]
                    left = cv2.resize(frame, (max(2, int(round(w * size / h))), size))
                    out = np.hstack([left, out])
                if output is not None:
                    if writer is None:
                        writer = VideoWriter(output, src.fps or 25.0, (out.shape[1], out.shape[0]))
                    writer.write(out)
                if keep_frames:
                    frames_out.append(out)
                records.append({"t": t, "mouth_open": mouth, "jawOpen": state.blendshapes.get("jawOpen", 0.0),
                                "yaw": state.total_rotation[0], "pitch": state.total_rotation[1]})
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        rt.close()
    n = len(records)
    if n == 0:
        raise InputError(f"{input_path} has no frames")
    return {"frames": n, "tracked": tracked, "ms_per_frame": 1000 * (time.perf_counter() - t0) / n,
            "records": records, "frames_bgr": frames_out}
