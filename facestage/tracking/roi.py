"""ROI tracking for video: the face mesh on a crop around each face's previous landmarks, detection on a schedule.

MediaPipe's whole-frame face mesh needs the whole frame in RGB every frame (a full-frame colour conversion
and a full-frame packet into its graph), and while it follows fewer faces than ``max_num_faces`` it runs
its detector on every frame too. Here each face gets its own tracking-mode mesh fed a CROP² crop placed
from the previous frame's landmarks (only the crop is converted to RGB), and the short-range detector runs
on the whole frame only every ``redetect_every`` frames while there is room for more faces, at once when a
face is lost, and on every frame while nobody is in view. The landmark model sees the same face at the
same resolution as in whole-frame tracking (its input is 192², the crop 256²), so the landmarks agree.
"""

from __future__ import annotations

import numpy as np

from .smallfaces import CropFinder, _box_of, _overlap, _Track, mesh_crop

# A track overlapping an earlier one by more than this (intersection over the smaller box) is the same face
# followed twice (two crops converging after faces crossed): the later one goes.
SAME_FACE_OVERLAP = 0.5
# A new detection overlapping a followed face by more than this is that face, not a new one.
KNOWN_FACE_OVERLAP = 0.3
class RoiFinder(CropFinder):
    """Faces the short-range detector finds, then followed frame to frame on crops. BGR frames in."""

    def __init__(self, max_faces: int, refine: bool = True, min_confidence: float = 0.5,
                 redetect_every: int = 10) -> None:
        # Short range (model 0): faces within ~2 m, i.e. the size the whole-frame mesh's own detector finds.
        super().__init__(0, refine, min_confidence, redetect_every)
        self.max_faces = max_faces
        self.detections = 0  # frames on which the detector ran (bench and tests read it)

    def reset(self) -> None:
        self._spare += [t.mesh for t in self._tracks]
        self._tracks = []
        self._since_detect = 10**9

    def seed(self, boxes: list[tuple[float, float, float, float]]) -> None:
        """Follow faces at these boxes from the next frame (a restored checkpoint's last ROIs)."""
        self.reset()
        for box in boxes[: self.max_faces]:
            b = tuple(float(v) for v in box)
            self._tracks.append(_Track(box=b, confidence=1.0, mesh=self._new_mesh(), crop_box=b))

    def reject(self, indices: list[int]) -> None:
        """Stop following the faces at these positions of the last :meth:`find` result (their meshes failed
        the tracker's plausibility checks); call :meth:`detect_new` to look for them again at once."""
        drop = set(indices)
        self._spare += [t.mesh for i, t in enumerate(self._tracks) if i in drop]
        self._tracks = [t for i, t in enumerate(self._tracks) if i not in drop]

    def _detect(self, bgr: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        import cv2

        self.detections += 1
        h, w = bgr.shape[:2]
        res = self._detector.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # the one full-frame conversion
        found = []
        for det in res.detections or ():
            bb = det.location_data.relative_bounding_box
            box = (bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h)
            if box[2] - box[0] >= 8:
                found.append((box, float(det.score[0])))
        return sorted(found, key=lambda d: -d[1])

    def find(self, bgr: np.ndarray, taken: list[tuple[float, float, float, float]] = ()
             ) -> list[tuple[np.ndarray, float]]:
        """(landmarks, confidence) of the faces in this frame, at most ``max_faces``, in the order of the tracks
        (``reject`` takes positions in this list). ``taken``: boxes of faces followed elsewhere (small-face
        crops), not to be picked up again by a detection."""
        out: list[tuple[np.ndarray, float]] = []
        kept: list[_Track] = []
        lost = False
        for track in self._tracks:
            if any(_overlap(track.box, k.box) > SAME_FACE_OVERLAP for k in kept):
                self._drop(track)
                continue
            pts = mesh_crop(bgr, track.crop_box, track.mesh)
            if pts is None:
                self._drop(track)
                lost = True
                continue
            track.follow(_box_of(pts))
            kept.append(track)
            out.append((pts, track.confidence))
        self._tracks = kept
        self._since_detect += 1
        if len(kept) < self.max_faces and (lost or not kept or self._since_detect >= self.redetect_every):
            out += self.detect_new(bgr, taken)
        return out

    def detect_new(self, bgr: np.ndarray, taken: list[tuple[float, float, float, float]] = ()
                   ) -> list[tuple[np.ndarray, float]]:
        """Run the detector now and start following faces not followed yet; returns their landmarks (their
        tracks are appended, so positions continue those of the last :meth:`find`)."""
        self._since_detect = 0
        out: list[tuple[np.ndarray, float]] = []
        boxes = [t.box for t in self._tracks] + list(taken)
        if len(self._tracks) < self.max_faces:
            for box, score in self._detect(bgr):
                if len(self._tracks) >= self.max_faces:
                    break
                if any(_overlap(box, b) > KNOWN_FACE_OVERLAP for b in boxes):
                    continue
                track = _Track(box=box, confidence=score, mesh=self._new_mesh(), crop_box=box)
                pts = mesh_crop(bgr, box, track.mesh)
                if pts is not None:
                    # Settle at once on the crop placed from the landmarks (the detector's box is tighter
                    # than the mesh's): the next frames then see the same crop the mesh just tracked in.
                    track.box = track.crop_box = _box_of(pts)
                    pts = mesh_crop(bgr, track.crop_box, track.mesh)
                if pts is None:
                    self._drop(track)
                    continue
                track.box = _box_of(pts)
                boxes.append(track.box)
                self._tracks.append(track)
                out.append((pts, score))
        return out
