"""The tracked face as a 3D frame: where a point given in face coordinates (metres) lands in the image.

The tracker's own pose solver (``tracking.pose.fit_pose``, a similarity from the neutral reference face
onto the landmarks) gives the rotation and the scale in pixels per metre; depth follows from the same
assumed focal length as ``HeadPose.translation`` (f = image width). Points are projected with a full
pinhole camera, so a sticker's far side shrinks when the head turns — true perspective, not the
landmarks' weak perspective.

Props are pinned to one tracked mesh point (``anchor``): the frame's translation is corrected so that the
anchor's reference position lands exactly on that landmark's pixel, at the depth the pose predicts. The
fit's residual (a few pixels) then moves the prop's far parts a little, never its anchor.

Face coordinates are the reference's: x towards the subject's left (image right when frontal), y down,
z away from the camera, metres, origin between the eyes ~1.6 cm behind the nose bridge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tracking.pose import fit_pose, reference, translation_from_fit

BRIDGE = 168  # nose bridge between the eyes: where glasses rest


@dataclass(frozen=True)
class FaceFrame:
    """Face-to-camera transform of one face in one frame, and the camera that sees it."""

    rotation: np.ndarray  # (3, 3) face -> camera
    translation: np.ndarray  # (3,) metres, camera frame
    focal: float  # pixels
    center: tuple[float, float]  # principal point, pixels
    scale: float  # pixels per metre at the face (the fit's)
    width_ratio: float  # this face's width / the reference face's (props follow the face's size)

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) face coordinates -> (N, 3) camera coordinates (metres)."""
        return np.asarray(pts, np.float64) @ self.rotation.T + self.translation

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) face coordinates -> (N, 2) pixels."""
        return self.project_camera(self.to_camera(pts))

    def project_camera(self, cam: np.ndarray) -> np.ndarray:
        z = np.maximum(cam[:, 2:3], 1e-4)
        return cam[:, :2] * (self.focal / z) + np.asarray(self.center)

    def landmarks_camera(self, lm: np.ndarray, push_back: float = 0.0) -> np.ndarray:
        """The tracked landmarks in camera coordinates: each pixel back-projected at the depth its
        relative z gives (so the mesh projects exactly onto the landmarks), moved ``push_back`` metres
        further along its viewing ray."""
        origin_z = float(self.translation[2])
        # Landmark z is in pixel units relative to the face; the fit maps it like x and y.
        z = origin_z + (lm[:, 2].astype(np.float64) - self._z_offset) / self.scale + push_back
        xy = (lm[:, :2].astype(np.float64) - np.asarray(self.center)) * (z / self.focal)[:, None]
        return np.column_stack([xy, z])

    _z_offset: float = 0.0


MIN_SCALE = 50.0  # pixels per metre: a face under ~7 px wide (or a collapsed mesh) has no usable frame


def face_frame(lm: np.ndarray, frame_shape: tuple[int, ...], anchor: int | None = BRIDGE) -> FaceFrame | None:
    """The 3D frame of a face from its (478, 3) pixel landmarks, pinned at landmark ``anchor``; None for a
    degenerate mesh (nothing sensible to anchor to)."""
    h, w = frame_shape[:2]
    if not np.isfinite(lm).all() or np.ptp(lm[:, 0]) < 4 or np.ptp(lm[:, 1]) < 4:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        fit = fit_pose(lm)
    if not (np.isfinite(fit.scale) and fit.scale > MIN_SCALE and np.isfinite(fit.rotation).all()):
        return None
    t = translation_from_fit(fit, w, h)
    focal, center = float(w), (w / 2.0, h / 2.0)
    ref = reference().points
    local = fit.to_local(lm.astype(np.float64))
    width_ratio = float(np.linalg.norm(local[454] - local[234]) / np.linalg.norm(ref[454] - ref[234]))
    frame = FaceFrame(fit.rotation, t, focal, center, fit.scale, width_ratio, float(fit.offset[2]))
    if anchor is None:
        return frame
    # Pin: the anchor's reference point, rotated, sits on the ray through its landmark pixel.
    p = ref[anchor] @ fit.rotation.T
    z = t[2] + p[2]
    ray = (lm[anchor, :2].astype(np.float64) - np.asarray(center)) * (z / focal)
    t_pinned = np.array([ray[0], ray[1], z]) - p
    return FaceFrame(fit.rotation, t_pinned, focal, center, fit.scale, width_ratio, float(fit.offset[2]))
