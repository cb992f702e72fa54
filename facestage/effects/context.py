"""FaceContext: what beauty, age and makeup share for one face in one frame, computed once.

Before this, each effect found its own ROI (three different ones), filled its own masks, downscaled
the frame again and wrote its own full-resolution pass. The chain now makes one context per face per
frame (after the warp pass, so on the reshaped face) and hands it to every effect that reads one:

* one ROI (the union of the margins the active effects ask for) and its work-resolution grid;
* the landmarks in work coordinates and the face width there;
* the ROI at work resolution (one downscale), the region masks on that grid, the cheeks' Lab colour;
* the **fused pass**: effects that change skin colour or texture (beauty's smoothing and tone, age's
  tone, graying, wrinkles and spots) do not touch the frame; they add a *delta image* at work
  resolution to ``delta`` and read ``current()`` (= work image + every delta so far) instead of the
  frame. ``flush`` writes the sum back with one upsample and one saturating add over the ROI.
  Effects that need full-resolution pixels (makeup's small regions, teeth, sharpening, stickers) run
  after the flush.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..tracking.types import Face
from .regions import Roi, face_roi, face_width, region_masks
from .skin import add_delta, cheek_lab, downscale

Margins = tuple[float, float, float]  # (sides, top, bottom) in face sizes, as ``face_roi`` takes them


def union_margins(margins: list[Margins]) -> Margins:
    """The smallest margins that hold every effect's own ROI."""
    return tuple(max(m[i] for m in margins) for i in range(3))  # type: ignore[return-value]


@dataclass
class FaceContext:
    """One face in one frame: shared ROI, work image, masks and the pending delta of the fused pass."""

    face: Face
    roi: Roi
    frame: np.ndarray  # the chain's output frame; read lazily (after the warp), written by ``flush``
    delta: np.ndarray | None = None  # float32 (h, w, 3) at work resolution, sum of the fused effects
    damp: np.ndarray | None = None  # share of the finest full-resolution detail to remove (0..1)
    _small: np.ndarray | None = None
    _masks: dict[str, np.ndarray] | None = None
    _masks_skin: bool = False
    _half_masks: dict[str, np.ndarray] | None = None
    _cheek_lab: np.ndarray | None = None
    dirty: tuple[int, int, int, int] | None = None  # grid box the deltas touched: only it is written back
    cache: dict = field(default_factory=dict)  # per-frame extras an effect wants to share

    @classmethod
    def create(cls, frame: np.ndarray, face: Face, margins: Margins) -> FaceContext | None:
        roi = face_roi(face.landmarks, frame.shape, margin=margins[0], top=margins[1], bottom=margins[2])
        return None if roi is None else cls(face, roi, frame)

    @property
    def lm(self) -> np.ndarray:
        return self.face.landmarks

    @property
    def work_pts(self) -> np.ndarray:
        """Landmarks in work-resolution coordinates of the ROI."""
        if "work_pts" not in self.cache:
            self.cache["work_pts"] = self.roi.to_work(self.lm)
        return self.cache["work_pts"]

    @property
    def fw(self) -> float:
        """Face width in frame pixels."""
        if "fw" not in self.cache:
            self.cache["fw"] = face_width(self.lm)
        return self.cache["fw"]

    @property
    def factor(self) -> int:
        """Frame pixels per work pixel (a power of two)."""
        return int(round(1.0 / self.roi.scale))

    def small(self) -> np.ndarray:
        """The ROI at work resolution as the frame holds it (before this pass's deltas), float32."""
        if self._small is None:
            self._small = downscale(self.frame[self.roi.slice()], self.roi.scale).astype(np.float32)
        return self._small

    def current(self) -> np.ndarray:
        """The work image as the fused pass has changed it so far (work image + deltas)."""
        return self.small() if self.delta is None else cv2.add(self.small(), self.delta)

    def add(self, delta: np.ndarray, box: tuple[int, int, int, int] | None = None) -> None:
        """Add a work-resolution delta (whole grid, or the sub-box x0, y0, x1, y1 of it)."""
        if self.delta is None:
            self.delta = np.zeros_like(self.small())
        if box is None:
            cv2.add(self.delta, delta, dst=self.delta)
        else:
            x0, y0, x1, y1 = box
            sub = self.delta[y0:y1, x0:x1]
            sub += delta
        self._touch(box)

    def _touch(self, box: tuple[int, int, int, int] | None) -> None:
        w, h = self.roi.work_size
        box = box or (0, 0, w, h)
        d = self.dirty
        self.dirty = box if d is None else (min(d[0], box[0]), min(d[1], box[1]), max(d[2], box[2]),
                                            max(d[3], box[3]))

    def pad(self, img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """A box-sized work image zero-padded to the whole grid."""
        x0, y0, x1, y1 = box
        w, h = self.roi.work_size
        return cv2.copyMakeBorder(img, y0, h - y1, x0, w - x1, cv2.BORDER_CONSTANT, value=0)

    def add_damp(self, damp: np.ndarray) -> None:
        """Remove this share of the finest detail too; two dampings compose like two passes would."""
        self.damp = damp if self.damp is None else 1.0 - (1.0 - self.damp) * (1.0 - damp)
        self._touch(None)

    @property
    def face_box(self) -> tuple[int, int, int, int]:
        """The face's own box on the grid (beauty's old ROI margins): masks, smoothing, tone and makeup
        work there; the rest of the shared ROI is hair and background that only age reads."""
        if "face_box" not in self.cache:
            w, h = self.roi.work_size
            self.cache["face_box"] = self.sub_box(0.12, 0.12, 0.1) or (0, 0, w // 2 * 2, h // 2 * 2)
        return self.cache["face_box"]

    @property
    def face_roi(self) -> Roi:
        """``face_box`` as a frame-coordinate ROI (same work scale)."""
        return self.box_roi(self.face_box)

    def masks(self, skin: bool = True) -> dict[str, np.ndarray]:
        """``region_masks`` on ``face_box``, filled once (the skin mask only when asked for)."""
        if self._masks is None or (skin and not self._masks_skin):
            self._masks = region_masks(self.lm, self.face_roi, skin=skin)
            self._masks_skin = skin
            self._half_masks = None
        return self._masks

    def masks_if_made(self) -> dict[str, np.ndarray] | None:
        """The region masks if an effect already filled them this frame (else None: filling all of them
        for one would cost more than the caller's own single mask)."""
        return self._masks

    def half_masks(self) -> dict[str, np.ndarray]:
        """The face and lips masks on the whole grid at half the work resolution (area average, then
        zero-padded from the face box)."""
        if self._half_masks is None:
            if self._masks is not None:  # beauty filled them at work resolution: area-downscale those
                half = {k: downscale(self._masks[k], 0.5) for k in ("face", "lips")}
            else:  # nobody needs them at work resolution: fill them at half (a quarter of the pixels)
                m = region_masks(self.lm, replace(self.face_roi, scale=self.roi.scale * 0.5), skin=False)
                half = {k: m[k] for k in ("face", "lips")}
            x0, y0, x1, y1 = (v // 2 for v in self.face_box)
            w, h = self.roi.work_size
            w, h = w // 2, h // 2
            self._half_masks = {k: cv2.copyMakeBorder(v, y0, h - y1, x0, w - x1, cv2.BORDER_CONSTANT, value=0)
                                for k, v in half.items()}
        return self._half_masks

    def crop(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """``current()`` on a box of the grid only (float32)."""
        x0, y0, x1, y1 = box
        small = self.small()[y0:y1, x0:x1]
        return small if self.delta is None else cv2.add(small, self.delta[y0:y1, x0:x1])

    def cheek_lab(self, lab: np.ndarray | None = None, roi: Roi | None = None) -> np.ndarray:
        """Median Lab colour of the cheeks, from the work image as the fused pass has it at first call
        (converted to Lab on the face box only), or from a Lab image of ``roi`` the caller already made."""
        if self._cheek_lab is None:
            if lab is not None and roi is not None:
                self._cheek_lab = cheek_lab(lab, self.lm, roi, is_lab=True)
            else:
                img = cv2.convertScaleAbs(self.crop(self.face_box))
                self._cheek_lab = cheek_lab(img, self.lm, self.face_roi)
        return self._cheek_lab

    def sub_box(self, margin: float, top: float, bottom: float) -> tuple[int, int, int, int] | None:
        """The landmarks' bounding box grown by the margins, on the work grid (even coordinates, so a
        half-resolution crop of it is exact), clipped to the grid."""
        p = self.work_pts[:, :2]
        (bx0, by0), (bx1, by1) = p.min(axis=0), p.max(axis=0)
        fw, fh = bx1 - bx0, by1 - by0
        w, h = self.roi.work_size
        x0 = max(int(np.floor((bx0 - margin * fw) / 2)) * 2, 0)
        y0 = max(int(np.floor((by0 - top * fh) / 2)) * 2, 0)
        x1 = min(int(np.ceil((bx1 + margin * fw) / 2)) * 2, w // 2 * 2)
        y1 = min(int(np.ceil((by1 + bottom * fh) / 2)) * 2, h // 2 * 2)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        return x0, y0, x1, y1

    def box_roi(self, box: tuple[int, int, int, int]) -> Roi:
        """The frame-coordinate ROI of a work-grid box (same scale)."""
        f = self.factor
        x0, y0, x1, y1 = box
        r = self.roi
        return Roi(r.x0 + x0 * f, r.y0 + y0 * f, r.x0 + x1 * f, r.y0 + y1 * f, r.scale)

    def flush(self) -> None:
        """Write the fused pass back: one upsample and one saturating add over the box the deltas
        touched (the whole ROI once age's hair band is in; the cheeks' boxes for blush alone). After it
        the work image is read again from the frame if an effect asks for it."""
        if self.dirty is not None:
            w, h = self.roi.work_size
            x0, y0, x1, y1 = self.dirty
            delta = self.delta if self.delta is not None else np.zeros_like(self.small())
            if (x0, y0, x1, y1) == (0, 0, w, h):
                add_delta(self.frame, self.roi, delta, self.damp)
            else:
                damp = None if self.damp is None else self.damp[y0:y1, x0:x1]
                add_delta(self.frame, self.box_roi(self.dirty), delta[y0:y1, x0:x1], damp)
        self.delta = self.damp = self._small = self._cheek_lab = self.dirty = None


class FrameContexts:
    """The contexts of one frame's faces, made on first use and shared by every effect in the chain."""

    def __init__(self, frame: np.ndarray, faces: list[Face], margins: Margins) -> None:
        self.frame = frame
        self.faces = faces
        self.margins = margins
        self._items: list[FaceContext | None] | None = None

    def __iter__(self):  # noqa: ANN204 - iterator of the faces' contexts that have a ROI
        if self._items is None:
            self._items = [FaceContext.create(self.frame, f, self.margins) for f in self.faces]
        return iter([c for c in self._items if c is not None])

    def bind(self, frame: np.ndarray) -> None:
        """Point the contexts at the frame the chain holds now (an effect may return a new array)."""
        self.frame = frame
        for ctx in self._items or []:
            if ctx is not None and ctx.frame is not frame:
                ctx.flush()
                ctx.frame = frame

    def flush(self) -> None:
        for ctx in self._items or []:
            if ctx is not None:
                ctx.flush()
