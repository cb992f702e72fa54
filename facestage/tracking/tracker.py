"""FaceTracker: frames in, typed ``Face`` results out.

Per frame: MediaPipe face mesh (478 landmarks) on the whole frame, plus small faces found by the
long-range detector and meshed on crops (``smallfaces.py``); implausible meshes are dropped; each
face gets a stable id, a head pose (rigid fit to the neutral reference, ``pose.py``), the 52 ARKit
scores (``blendshapes.py``) and One-Euro smoothing per id (``filters.py``, off for still images).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from .arkit import ARKIT_NAMES
from .blendshapes import FEATURES, BlendshapeSolver, measure, tongue_estimate
from .filters import FaceFilters, SmoothingConfig
from .landmarks import (
    CHIN,
    L_EYE_INNER,
    L_EYE_OUTER,
    LIP_UPPER_OUTER,
    R_EYE_INNER,
    R_EYE_OUTER,
    add_eye_centres_as_iris,
    landmarks_to_array,
)
from .pose import fit_pose, head_pose, pose_from_params, reference, translation_from_fit
from .types import NUM_LANDMARKS, Face
from .upright import UprightCheck

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# A mesh whose stable points miss the rigid reference by more than this (RMS, in pupil distances)
# is not a face seen from any angle: MediaPipe squeezing an upright mesh onto an upside-down face.
# Measured: upright faces 0.008-0.087 (photos at 0-90 deg roll, every carphone frame), upside-down
# photos and carphone frames 0.114-0.205.
MAX_FIT_RESIDUAL = 0.10
# Between MAX_FIT_RESIDUAL and this, the face detector decides which way up the face is (``upright.py``): real
# faces looking down ~20 degrees close to the camera fit this badly too (measured 0.09-0.13 on rendered
# built-ins and photo avatars). Above it nothing upright was ever measured: rejected without asking.
MAX_ASKED_RESIDUAL = 0.15
# A face missed for up to this many frames (a mesh rejected once, a hand passing, a turn too far for a
# moment) gets its id back when it reappears near where it was: half a second at 30 fps.
ID_GRACE_FRAMES = 15
# Iris diameter / eye width is 0.42-0.48 on real eyes; the iris model's output on a non-eye
# (an upside-down face's mouth) often falls outside this band.
IRIS_RATIO_RANGE = (0.30, 0.65)
# One eye narrower than this fraction of the other in the image: the head is turned and only the near eye's
# iris is checked, against TURNED_IRIS_MIN. Measured eye-width ratios: frontal photos and carphone frames
# 0.93-1.0; a rendered 60 deg profile in a group photo 0.20-0.38, its near iris then 0.29-0.44 eye widths
# (the mesh's depth at a profile stretches the eye in the face frame).
FAR_EYE_RATIO = 0.6
TURNED_IRIS_MIN = 0.25


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        raise InputError("frame must be a non-empty HxWx3 BGR uint8 image")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.shape[2] == 4:
        frame = np.ascontiguousarray(frame[:, :, :3])
    if frame.shape[2] != 3:
        raise InputError(f"frame must have 3 colour channels, got {frame.shape[2]}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8, got {frame.dtype}")
    return frame


def plausible(pts: np.ndarray) -> bool:
    """Eyes above the mouth and chin in the face's own up direction (rejects upside-down meshes)."""
    eyes = 0.25 * (pts[R_EYE_OUTER] + pts[R_EYE_INNER] + pts[L_EYE_OUTER] + pts[L_EYE_INNER])
    across = pts[L_EYE_OUTER, :2] - pts[R_EYE_OUTER, :2]
    down = np.array([-across[1], across[0]])  # eye line turned 90 deg: the face's "down" if upright
    mouth_below = float((pts[LIP_UPPER_OUTER, :2] - eyes[:2]) @ down) > 0
    chin_below = float((pts[CHIN, :2] - eyes[:2]) @ down) > 0
    return mouth_below and chin_below


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _irises_plausible(local: np.ndarray, pts: np.ndarray | None = None) -> bool:
    """Both irises 0.30-0.65 eye widths across; on a turned head (one eye under FAR_EYE_RATIO of the other's
    width in the image) only the near eye's, from TURNED_IRIS_MIN: the ring on a far, foreshortened eye is
    noise."""
    lo, hi = IRIS_RATIO_RANGE
    eyes = ((469, R_EYE_OUTER, R_EYE_INNER), (474, L_EYE_OUTER, L_EYE_INNER))
    if pts is not None:
        widths = [float(np.linalg.norm(pts[o, :2] - pts[i, :2])) for _, o, i in eyes]
        if min(widths) < FAR_EYE_RATIO * max(widths):
            eyes, lo = (eyes[int(np.argmax(widths))],), TURNED_IRIS_MIN
    # The larger of the ring's horizontal and vertical diameters: a turned head foreshortens the horizontal
    # one (measured 0.16-0.29 at 50-60 deg yaw on rendered heads, where the vertical one stays 0.33-0.44).
    for first, outer, inner in eyes:
        diameter = max(np.linalg.norm(local[first] - local[first + 2]),
                       np.linalg.norm(local[first + 1] - local[first + 3]))
        ratio = diameter / max(abs(local[outer, 0] - local[inner, 0]), 1e-9)
        if not lo <= ratio <= hi:
            return False
    return True


class FaceTracker:
    """Track up to ``max_faces`` faces in BGR frames.

    ``smoothing``: a :class:`SmoothingConfig` (One-Euro tuning), or ``None``/``False`` for raw
    output. ``static=True`` treats every frame as an unrelated still image (detection on every
    frame, no smoothing, no id continuity needed). ``small_faces`` adds the long-range detector
    and crops for faces too small for the mesh's own detector (``redetect_every`` frames in video).
    ``roi`` (video only, the default): each face is followed by the mesh on a crop around its previous
    landmarks, the short-range detector runs every ``roi_redetect_every`` frames while there is room for
    more faces, or at once when a face is lost (``roi.py``); no full-frame colour conversion on the
    frames in between. ``roi=False``: MediaPipe's whole-frame mesh on every frame.
    """

    def __init__(self, max_faces: int = 4, refine: bool = True,
                 smoothing: SmoothingConfig | bool | None = True, static: bool = False,
                 min_confidence: float = 0.5, small_faces: bool = True, redetect_every: int = 30,
                 tongue: bool = True, roi: bool = True, roi_redetect_every: int = 10) -> None:
        import mediapipe as mp  # heavy import kept lazy so the CLI starts fast

        if max_faces < 1:
            raise InputError(f"max_faces must be at least 1, got {max_faces}")
        self.max_faces = max_faces
        self.refine = refine
        self.static = static
        self.min_confidence = min_confidence
        if smoothing is True:
            smoothing = SmoothingConfig()
        self.smoothing: SmoothingConfig | None = None if (static or not smoothing) else smoothing
        self.tongue = tongue
        self.roi = bool(roi) and not static
        self._mesh = None
        self._roi = None
        if self.roi:
            from .roi import RoiFinder

            self._roi = RoiFinder(max_faces, refine=refine, min_confidence=min_confidence,
                                  redetect_every=roi_redetect_every)
        else:
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=max_faces, refine_landmarks=refine,
                min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence)
        self._small = None
        if small_faces:
            from .smallfaces import SmallFaceFinder

            self._small = SmallFaceFinder(refine=refine, static=static, redetect_every=redetect_every,
                                          min_confidence=min_confidence)
        self._upright = UprightCheck()
        self._solver = BlendshapeSolver(reference().points)
        self._next_id = 0
        self._prev: list[tuple[int, np.ndarray, float]] = []  # id, centre, size
        # Faces missed for a few frames (a rejected mesh, a hand passing): id -> (centre, size, frames missed).
        self._gone: dict[int, tuple[np.ndarray, float, int]] = {}
        self._filters: dict[int, FaceFilters] = {}
        self._last_local: dict[int, np.ndarray] = {}  # id -> face-frame points of its latest frame
        self._neutrals: dict[int, np.ndarray] = {}  # id -> calibrated neutral features
        self._rois: dict[int, tuple[float, float, float, float]] = {}  # id -> last bbox (x0, y0, x1, y1)
        self._frame_index = 0
        self._last_t: float | None = None

    def close(self) -> None:
        self._upright.close()
        for part in (self._mesh, self._roi):
            if part is not None:
                part.close()
        if self._small is not None:
            self._small.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget ids, filter state and calibrations (e.g. on a scene cut or a new user)."""
        self._prev = []
        self._gone = {}
        self._rois = {}
        self._filters.clear()
        self._last_local.clear()
        self._neutrals.clear()
        if self._small is not None:
            self._small.reset()
        if self._roi is not None:
            self._roi.reset()

    def track(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> list[Face]:
        frame_bgr = _check_frame(frame_bgr)
        t = float(timestamp_s) if timestamp_s is not None else self._frame_index / 30.0
        self._frame_index += 1
        self._last_t = t
        h, w = frame_bgr.shape[:2]
        found: list[tuple[np.ndarray, float]] = []
        if self._roi is not None:
            found = self._roi.find(frame_bgr, self._small.boxes if self._small is not None else [])
        else:
            import cv2

            # cv2's channel swap: ~20x faster than numpy's negative-stride copy (11 ms at 720p under load).
            result = self._mesh.process(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))  # type: ignore[union-attr]
            for lms in result.multi_face_landmarks or ():
                pts = landmarks_to_array(lms, w, h)
                found.append((pts if len(pts) == NUM_LANDMARKS else add_eye_centres_as_iris(pts), 1.0))
        n_roi = len(found)
        if self._small is not None and len(found) < self.max_faces:
            found += self._small.find(frame_bgr, [pts for pts, _ in found], self.max_faces - len(found))
        checked = [self._analyse(frame_bgr, pts, conf) for pts, conf in found]
        rejected = [i for i, a in enumerate(checked[:n_roi]) if a is None]
        if rejected and self._roi is not None:
            # A followed face whose crop mesh failed the checks (it slipped off under fast motion): look for
            # it again on this frame, with the detector and a fresh crop.
            self._roi.reject(rejected)
            taken = [a[0].bbox for a in checked if a is not None]
            checked += [self._analyse(frame_bgr, pts, conf) for pts, conf in self._roi.detect_new(frame_bgr, taken)]
        analysed = [a for a in checked if a is not None]
        local_of = {id(face): local for face, local in analysed}
        faces = self._dedupe([face for face, _ in analysed])[: self.max_faces]
        self._assign_ids(faces)
        live = {f.id for f in faces}
        for face in faces:
            local = local_of[id(face)]
            self._last_local[face.id] = local
            scores = self._solver.solve(local, neutral=self._neutrals.get(face.id))
            if self.tongue:
                scores[_TONGUE] = tongue_estimate(frame_bgr, face.landmarks, scores[_JAW_OPEN])
            if not self.refine:
                scores[_LOOK] = 0.0  # no iris model, no gaze
            if self.smoothing is not None:
                scores = self._smooth(face, scores, t)
            face.blendshapes = dict(zip(ARKIT_NAMES, scores.tolist(), strict=True))
        self._rois = {f.id: f.bbox for f in faces}
        for store in (self._last_local, self._filters):
            for fid in [k for k in store if k not in live and k not in self._gone]:
                del store[fid]
        return faces

    def calibrate_neutral(self, face_id: int | None = None) -> list[int]:
        """Take the latest frame of a face (all current faces if ``face_id`` is None) as its neutral.

        Faces differ: a long chin reads as a slightly open jaw against the shipped reference, high
        brows as raised brows. Call this while the person holds a relaxed, neutral face; from then on
        that id's expressions are measured against its own neutral. Returns the calibrated ids.
        """
        ids = list(self._last_local) if face_id is None else [face_id]
        done = []
        for fid in ids:
            local = self._last_local.get(fid)
            if local is not None:
                self._neutrals[fid] = measure(local)
                done.append(fid)
        return done

    def clear_neutral(self, face_id: int | None = None) -> None:
        """Back to the shipped reference neutral for one face (or all)."""
        if face_id is None:
            self._neutrals.clear()
        else:
            self._neutrals.pop(face_id, None)

    CHECKPOINT_VERSION = 2

    def checkpoint(self) -> dict:
        """Everything needed to continue this tracker elsewhere, as JSON-serialisable data: face ids and the
        next id, each id's One-Euro filter state, last ROIs (bbox in pixels), calibrations and the frame
        clock. A live session is checkpointed and resumed in another process with :meth:`restore`.
        MediaPipe's own graph state is not included: the new tracker re-detects on its first frame and
        matches what it finds to the restored ids."""
        return {
            "version": self.CHECKPOINT_VERSION,
            "next_id": self._next_id,
            "faces": [{"id": fid, "centre": c.tolist(), "size": size,
                       "roi": list(self._rois[fid]) if fid in self._rois else None}
                      for fid, c, size in self._prev],
            "filters": {str(fid): f.filter.state() for fid, f in self._filters.items()},
            "neutrals": {str(fid): n.tolist() for fid, n in self._neutrals.items()},
            "clock": {"frame_index": self._frame_index, "last_t": self._last_t},
        }

    def state(self) -> dict:
        """Older name of :meth:`checkpoint`."""
        return self.checkpoint()

    def restore(self, state: dict) -> None:
        """Continue from another tracker's :meth:`checkpoint` (same smoothing configuration).

        Validated before anything changes: a wrong version, missing field or array of the wrong shape raises
        ``ValueError`` (``InputError``) and leaves this tracker as it was."""
        try:
            if not isinstance(state, dict) or state.get("version") != self.CHECKPOINT_VERSION:
                got = state.get("version") if isinstance(state, dict) else type(state).__name__
                raise ValueError(f"unknown version {got!r}, expected {self.CHECKPOINT_VERSION}")
            next_id = int(state["next_id"])
            prev, rois = [], {}
            for face in state["faces"]:
                fid = int(face["id"])
                centre = _array(face["centre"], (2,), f"faces[{fid}].centre")
                size = float(face["size"])
                if not (np.isfinite(size) and size > 0) or fid < 0 or fid >= next_id:
                    raise ValueError(f"face {fid}: bad size {size!r} or id outside 0..next_id")
                prev.append((fid, centre, size))
                if face.get("roi") is not None:
                    rois[fid] = tuple(float(v) for v in _array(face["roi"], (4,), f"faces[{fid}].roi"))
            n = FaceFilters.size()
            filters: dict[int, FaceFilters] = {}
            for fid, fstate in state["filters"].items():
                if fstate is not None:
                    for key in ("x", "dx"):
                        _array(fstate[key], (n,), f"filters[{fid}].{key}")
                    float(fstate["t"])
                if self.smoothing is not None:
                    filt = filters[int(fid)] = FaceFilters(self.smoothing)
                    filt.filter.restore(fstate)
            n_features = len(FEATURES)
            neutrals = {int(fid): _array(v, (n_features,), f"neutrals[{fid}]") for fid, v in state["neutrals"].items()}
            clock = state["clock"]
            frame_index = int(clock["frame_index"])
            last_t = None if clock.get("last_t") is None else float(clock["last_t"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"not a FaceTracker checkpoint: {exc}") from None
        self.reset()
        self._next_id, self._prev, self._rois = next_id, prev, rois
        self._filters, self._neutrals = filters, neutrals
        self._frame_index, self._last_t = frame_index, last_t
        if self._roi is not None:  # follow the restored faces from their last ROIs: no re-detection wait
            self._roi.seed([rois[fid] for fid, _, _ in prev if fid in rois])

    def _analyse(self, frame_bgr: np.ndarray, pts: np.ndarray, confidence: float) -> tuple[Face, np.ndarray] | None:
        """Plausibility checks and the rigid fit: a Face without scores yet and its face-frame points."""
        if not plausible(pts):
            return None
        fit = fit_pose(pts)
        if fit.residual > MAX_ASKED_RESIDUAL:
            return None
        x0, y0, _ = pts.min(axis=0)
        x1, y1, _ = pts.max(axis=0)
        box = (float(x0), float(y0), float(x1), float(y1))
        if fit.residual > MAX_FIT_RESIDUAL and not (self._was_here(box) or self._upright.upright(frame_bgr, box)):
            return None
        local = fit.to_local(pts.astype(np.float64))
        if self.refine and not _irises_plausible(local, pts):
            return None
        h, w = frame_bgr.shape[:2]
        # Confidence: the detector's (1.0 for the mesh's own path) times how rigid-face-like the fit is.
        conf = confidence * float(np.exp(-((fit.residual / 0.1) ** 2)))
        face = Face(id=-1, landmarks=pts, confidence=conf, bbox=box, pose=head_pose(fit, w, h))
        return face, local

    def _was_here(self, box: tuple[float, float, float, float]) -> bool:
        """Video: a face was accepted at this place on the previous frame (within half a face size), so it is
        the same face and was found upright then; the detector is not asked again on every frame while someone
        keeps looking down. An upside-down face is never accepted in the first place."""
        if self.static:
            return False
        c = np.array([0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])])
        size = box[2] - box[0]
        return any(float(np.linalg.norm(pc - c)) < 0.5 * max(size, psize) for _, pc, psize in self._prev)

    def _smooth(self, face: Face, scores: np.ndarray, t: float) -> np.ndarray:
        """One-Euro filter this id's landmarks and pose in place; return its smoothed scores."""
        filt = self._filters.get(face.id)
        if filt is None:
            filt = self._filters[face.id] = FaceFilters(self.smoothing)  # type: ignore[arg-type]
        size = max(face.bbox[2] - face.bbox[0], 1.0)
        p = face.pose
        # Translation is in metres while angles are in degrees: filter it in cm for one beta.
        pose_vec = np.array([p.yaw, p.pitch, p.roll, 100 * p.translation[0], 100 * p.translation[1],
                             100 * p.translation[2]])
        lm, sm, sm_scores = filt(face.landmarks, pose_vec, scores, t, size)
        face.landmarks = lm.astype(np.float32)
        face.pose = pose_from_params(sm[0], sm[1], sm[2], sm[3:] / 100.0)
        x0, y0, _ = face.landmarks.min(axis=0)
        x1, y1, _ = face.landmarks.max(axis=0)
        face.bbox = (float(x0), float(y0), float(x1), float(y1))
        return np.clip(sm_scores, 0.0, 1.0)

    def _dedupe(self, faces: list[Face]) -> list[Face]:
        """Drop duplicate meshes of one face (MediaPipe's re-detection can add a second mesh on a face
        it is already tracking). The mesh closest to a face of the previous frame wins."""
        if len(faces) < 2:
            return faces

        def dist_to_prev(face: Face) -> float:
            c = face.landmarks[:, :2].mean(axis=0)
            return min((float(np.linalg.norm(pc - c)) for _, pc, _ in self._prev), default=0.0)

        kept: list[Face] = []
        for face in sorted(faces, key=dist_to_prev):
            if all(_iou(face.bbox, k.bbox) < 0.4 for k in kept):
                kept.append(face)
        return kept

    def _assign_ids(self, faces: list[Face]) -> None:
        """Greedy nearest-centre matching to the previous frame's faces (within half a face size)."""
        cur = [(f, f.landmarks[:, :2].mean(axis=0), f.bbox[2] - f.bbox[0]) for f in faces]
        pairs = []
        candidates = self._prev + [(fid, c, size) for fid, (c, size, _) in self._gone.items()]
        for i, (_, c, size) in enumerate(cur):
            for fid, pc, psize in candidates:
                d = float(np.linalg.norm(pc - c))
                if d < 0.5 * max(size, psize):
                    pairs.append((d, i, fid))
        pairs.sort()
        used_ids: set[int] = set()
        assigned: set[int] = set()
        for _, i, fid in pairs:
            if i in assigned or fid in used_ids:
                continue
            cur[i][0].id = fid
            assigned.add(i)
            used_ids.add(fid)
        for i, (face, _, _) in enumerate(cur):
            if i not in assigned:
                face.id = self._next_id
                self._next_id += 1
        gone = {fid: (c, size, missed + 1) for fid, (c, size, missed) in self._gone.items()
                if fid not in used_ids and missed + 1 <= ID_GRACE_FRAMES}
        gone.update({fid: (c, size, 1) for fid, c, size in self._prev if fid not in used_ids})
        self._gone = gone if not self.static else {}
        self._prev = [(f.id, c, s) for f, c, s in cur]


def _array(value: object, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A finite float array of exactly ``shape`` from checkpoint data, or ValueError naming the field."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape or not np.isfinite(arr).all():
        raise ValueError(f"{where}: expected {shape} finite numbers, got shape {arr.shape}")
    return arr


def _index(name: str) -> int:
    return ARKIT_NAMES.index(name)


_JAW_OPEN = _index("jawOpen")
_LOOK = [i for i, n in enumerate(ARKIT_NAMES) if n.startswith("eyeLook")]
_TONGUE = _index("tongueOut")

# Kept importable for callers that want the metric translation of a fit without a full pose.
__all__ = ["FaceTracker", "plausible", "translation_from_fit"]
