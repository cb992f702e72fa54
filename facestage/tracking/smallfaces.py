"""Small and extra faces: long-range detector, crops, and a face mesh on each crop.

MediaPipe's face mesh only finds faces its short-range detector sees (faces larger than ~20 % of
the frame). Faces of ~10 % of the frame width, typical of group shots and wide webcams, need
``FaceDetection(model_selection=1)`` (the long-range model), a crop around each detection and the
mesh on the crop. On a large group photo even the long-range detector misses faces on the whole
frame, so it also runs on 2x3 overlapping tiles.

Cost control for video: the detector runs on one region per ``redetect_every`` frames (6x as often
while no face at all is in view), cycling through the whole frame and the tiles (whole frame every
other time). In between, each small face
is tracked by its own tracking-mode mesh on a crop placed from the previous frame's landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landmarks import add_eye_centres_as_iris, landmarks_to_array
from .types import NUM_LANDMARKS

CROP = 256  # px: the mesh's own input is 192x192, a bit more keeps the face whole under motion
CROP_MARGIN = 1.7  # crop side / face size
TILE_MIN_SIDE = 900  # frames smaller than this are not tiled


# The crop stays put until the face has drifted this far from where the crop was placed (centre shift in
# face sizes, or face size ratio): the mesh inside tracks in the crop's coordinates (its next ROI comes from
# its last landmarks), so a crop that moved every frame would hand it a slightly wrong ROI every frame.
RECROP_SHIFT = 0.08
RECROP_SCALE = 1.15


@dataclass
class _Track:
    box: tuple[float, float, float, float]  # the face's landmark box in this frame
    confidence: float
    mesh: object
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the box the crop is placed from

    def __post_init__(self) -> None:
        if self.crop_box[2] <= self.crop_box[0]:
            self.crop_box = self.box

    def follow(self, box: tuple[float, float, float, float]) -> None:
        self.box = box
        size = max(box[2] - box[0], box[3] - box[1], 1.0)
        csize = max(self.crop_box[2] - self.crop_box[0], self.crop_box[3] - self.crop_box[1], 1.0)
        shift = np.hypot(box[0] + box[2] - self.crop_box[0] - self.crop_box[2],
                         box[1] + box[3] - self.crop_box[1] - self.crop_box[3]) / 2
        if shift > RECROP_SHIFT * size or not 1 / RECROP_SCALE < size / csize < RECROP_SCALE:
            self.crop_box = box


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over the smaller box's area (a small face inside a big one counts as overlap)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def _box_of(pts: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = pts[:, :2].min(axis=0)
    x1, y1 = pts[:, :2].max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def mesh_crop(bgr: np.ndarray, box: tuple[float, float, float, float], mesh: object) -> np.ndarray | None:
    """Landmarks (478, 3) in frame pixels of the face in ``box``, from ``mesh`` run on a CROP² crop around it.

    Only the crop is converted to RGB (the mesh wants RGB; the frame stays BGR): at 640x480 that is 1/5 of
    the pixels of a full-frame conversion, at 1280x720 1/14."""
    import cv2

    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    side = CROP_MARGIN * max(box[2] - box[0], box[3] - box[1], 8.0)
    h, w = bgr.shape[:2]
    x0, y0, n = int(round(cx - side / 2)), int(round(cy - side / 2)), max(int(round(side)), 8)
    if x0 >= 0 and y0 >= 0 and x0 + n <= w and y0 + n <= h:
        # Inside the frame: a slice and a resize, ~2.5x cheaper than the warp. cv2.resize samples pixel
        # centres: destination x comes from source (x + 0.5) / k - 0.5, which this m inverts exactly.
        k = CROP / n
        m = np.array([[k, 0.0, k * (0.5 - x0) - 0.5], [0.0, k, k * (0.5 - y0) - 0.5]])
        crop = cv2.resize(bgr[y0:y0 + n, x0:x0 + n], (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    else:  # partly outside: the warp fills the rest with black
        k = CROP / side
        m = np.array([[k, 0.0, CROP / 2 - k * cx], [0.0, k, CROP / 2 - k * cy]])
        crop = cv2.warpAffine(bgr, m, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    res = mesh.process(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))  # type: ignore[attr-defined]
    if not res.multi_face_landmarks:
        return None
    pts = landmarks_to_array(res.multi_face_landmarks[0], CROP, CROP)
    if len(pts) != NUM_LANDMARKS:
        pts = add_eye_centres_as_iris(pts)
    pts[:, 0] = (pts[:, 0] - m[0, 2]) / k
    pts[:, 1] = (pts[:, 1] - m[1, 2]) / k
    pts[:, 2] /= k
    return pts


def tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """2 rows x 3 columns of overlapping tiles (x0, y0, x1, y1) covering a large frame."""
    cols, rows, ov = 3, 2, 0.25
    tw, th = w / (cols - (cols - 1) * ov), h / (rows - (rows - 1) * ov)
    out = []
    for r in range(rows):
        for c in range(cols):
            x0, y0 = int(c * tw * (1 - ov)), int(r * th * (1 - ov))
            out.append((x0, y0, min(w, int(x0 + tw)), min(h, int(y0 + th))))
    return out


class CropFinder:
    """What both crop trackers share (this module's small faces and roi.py's video ROIs): a face detector,
    the followed faces with one face mesh each, and a pool of meshes of finished faces for reuse."""

    def __init__(self, detector_model: int, refine: bool, min_confidence: float, redetect_every: int,
                 static: bool = False) -> None:
        import mediapipe as mp

        self._mp = mp
        self.refine = refine
        self.static = static
        self.min_confidence = min_confidence
        self.redetect_every = max(1, int(redetect_every))
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=detector_model, min_detection_confidence=min_confidence)
        self._tracks: list[_Track] = []
        self._spare: list[object] = []  # meshes of finished tracks, reused (creating one costs ~20 ms)
        self._since_detect = 10**9  # detect on the first frame

    @property
    def boxes(self) -> list[tuple[float, float, float, float]]:
        """Boxes of the faces being followed."""
        return [t.box for t in self._tracks]

    def close(self) -> None:
        self._detector.close()
        for m in self._spare + [t.mesh for t in self._tracks]:
            m.close()  # type: ignore[attr-defined]
        self._tracks, self._spare = [], []

    def _new_mesh(self) -> object:
        # Stills: one static-mode mesh serves every crop (it keeps no state). Video: one tracking-mode
        # mesh per followed face, recycled when that face goes.
        if self._spare:
            return self._spare.pop()
        return self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=bool(self.static), max_num_faces=1, refine_landmarks=self.refine,
            min_detection_confidence=self.min_confidence, min_tracking_confidence=self.min_confidence)

    def _drop(self, track: _Track) -> None:
        self._spare.append(track.mesh)


class SmallFaceFinder(CropFinder):
    def __init__(self, refine: bool = True, static: bool = False, redetect_every: int = 30,
                 min_confidence: float = 0.5) -> None:
        # long range (model 1): small, distant faces
        super().__init__(1, refine, min_confidence, redetect_every, static)
        self._frame = 0
        self._fast_left = 0
        self._region = 0
        self._sweep = True  # the next detection searches every region

    def reset(self) -> None:
        """Forget the small faces being followed (their meshes are kept for reuse)."""
        for track in self._tracks:
            self._drop(track)
        self._tracks = []
        self._frame = 0
        self._since_detect = 10**9
        self._fast_left = 0
        self._sweep = True

    def _mesh_crop(self, bgr: np.ndarray, box: tuple[float, float, float, float], mesh: object
                   ) -> np.ndarray | None:
        return mesh_crop(bgr, box, mesh)

    @staticmethod
    def _cycle_length(bgr: np.ndarray) -> int:
        h, w = bgr.shape[:2]
        return 1 + 2 * len(tiles(w, h)) if max(w, h) >= TILE_MIN_SIDE else 1

    def _detect(self, bgr: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        import cv2

        h, w = bgr.shape[:2]
        regions: list[tuple[int, int, int, int]] = [(0, 0, w, h)]
        big = max(w, h) >= TILE_MIN_SIDE
        if self.static or self._sweep:
            # Stills, and a video's first frame: the whole frame and every tile at once, so a group in view
            # from the start is found on frame one instead of one region per schedule step.
            regions += tiles(w, h) if big else []
            self._sweep = False
        else:
            # One region per detection frame: whole frame every other time, the tiles in between.
            cycle = [(0, 0, w, h)]
            for tile in tiles(w, h) if big else []:
                cycle += [tile, (0, 0, w, h)]
            regions = [cycle[self._region % len(cycle)]]
            self._region += 1
        found = []
        for x0, y0, x1, y1 in regions:
            res = self._detector.process(cv2.cvtColor(bgr[y0:y1, x0:x1], cv2.COLOR_BGR2RGB))  # this region only
            for det in res.detections or ():
                bb = det.location_data.relative_bounding_box
                rw, rh = x1 - x0, y1 - y0
                box = (x0 + bb.xmin * rw, y0 + bb.ymin * rh, x0 + (bb.xmin + bb.width) * rw,
                       y0 + (bb.ymin + bb.height) * rh)
                if box[2] - box[0] >= 8:
                    found.append((box, float(det.score[0])))
        # Tiles overlap: keep the best of duplicate detections.
        found.sort(key=lambda d: -d[1])
        kept: list[tuple[tuple[float, float, float, float], float]] = []
        for box, score in found:
            if all(_overlap(box, k[0]) < 0.5 for k in kept):
                kept.append((box, score))
        return kept

    def find(self, bgr: np.ndarray, known: list[np.ndarray], room: int) -> list[tuple[np.ndarray, float]]:
        """Faces not among ``known`` (landmark arrays found otherwise), at most ``room``, in a BGR frame."""
        known_boxes = [_box_of(p) for p in known]
        out: list[tuple[np.ndarray, float]] = []
        kept: list[_Track] = []
        for track in self._tracks if not self.static else []:
            if any(_overlap(track.box, kb) > 0.5 for kb in known_boxes):
                self._drop(track)  # the whole-frame mesh has it now
                continue
            pts = self._mesh_crop(bgr, track.crop_box, track.mesh)
            if pts is None or len(out) >= room:
                self._drop(track)
                continue
            track.follow(_box_of(pts))
            kept.append(track)
            out.append((pts, track.confidence))
        self._tracks = kept
        # Search 6x faster while nobody is in view (the detector is then the only work being done)
        # and for one full cycle of regions after a detection found someone new (people tend to
        # arrive together, and the rest of the frame's regions are still to be searched).
        fast = not (known or out) or self._fast_left > 0
        every = max(1, self.redetect_every // 6) if fast else self.redetect_every
        self._since_detect += 1
        if len(out) < room and (self.static or self._since_detect >= every):
            self._since_detect = 0
            self._fast_left = max(self._fast_left - 1, 0)
            n_before = len(out)
            taken = known_boxes + [t.box for t in kept]
            for box, score in self._detect(bgr):
                if len(out) >= room:
                    break
                if any(_overlap(box, tb) > 0.3 for tb in taken):
                    continue
                mesh = self._new_mesh()
                track = _Track(box=box, confidence=score, mesh=mesh)
                pts = self._mesh_crop(bgr, box, mesh)
                if pts is not None and not self.static:
                    # Settle on the crop placed from the landmarks at once (see roi.py).
                    track.box = track.crop_box = _box_of(pts)
                    pts = self._mesh_crop(bgr, track.crop_box, mesh)
                if pts is None:
                    self._drop(track)
                    continue
                track.box = _box_of(pts)
                taken.append(track.box)
                out.append((pts, score))
                if self.static:
                    self._drop(track)
                else:
                    self._tracks.append(track)
            if len(out) > n_before:
                self._fast_left = self._cycle_length(bgr)
        self._frame += 1
        return out
