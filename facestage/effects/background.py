"""background: blur or replace (image or colour) the background behind the person.

The person mask comes from MediaPipe's selfie-segmentation model (ships in mediapipe 0.10.21, landscape
variant, 256x144 input). Its mask is refined with a guided filter using the frame as guide (hair and
shoulders snap to real edges), smoothed over time (exponential moving average in ``state``, so the
edge does not shimmer) and feathered. Works with or without faces in the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..tracking.types import Face
from .base import Effect, P, Param, color_bgr, read_param_image, register

MASK_WIDTH = 320  # the mask is refined at this width, then upsampled


class _Segmenter:
    def __init__(self) -> None:
        import mediapipe as mp  # lazy: heavy import, and only this effect needs it

        self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        sw = min(MASK_WIDTH, w)
        sh = max(int(round(h * sw / w)), 1)
        small = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
        res = self._seg.process(np.ascontiguousarray(small[:, :, ::-1]))
        mask = res.segmentation_mask
        if mask is None:
            return np.zeros((sh, sw), np.float32)
        mask = np.asarray(mask, np.float32)
        if mask.shape != (sh, sw):
            mask = cv2.resize(mask, (sw, sh))
        guide = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return np.clip(cv2.ximgproc.guidedFilter(guide, mask, 4, 1e-3 * 255**2 * 0.02, -1), 0, 1)


@register
class Background(Effect):
    name = "background"
    description = "blur or replace the background (selfie segmentation, guided-filter edge, smoothed in time)"
    needs_faces = False
    params = {
        "mode": Param("choice", "blur", "what to do with the background", choices=("blur", "replace")),
        "blur": P(0.6, 0, 1, "blur strength (mode=blur)"),
        "color": Param("color", "#00a86b", "replacement colour (mode=replace without image)"),
        "image": Param("path", "", "replacement image file (mode=replace), scaled to cover the frame"),
        "edge": P(0.5, 0, 1, "edge softness"),
        "smooth": P(0.5, 0, 0.95, "temporal smoothing of the mask (0 = none)"),
    }

    def render(self, frame: np.ndarray, faces: list[Face], params: dict, state: dict) -> np.ndarray:
        if "seg" not in state:
            state["seg"] = _Segmenter()
        mask = state["seg"](frame)
        prev = state.get("mask")
        if prev is not None and prev.shape == mask.shape and params["smooth"] > 0:
            # Follow big changes at once, average small flicker away.
            a = 1.0 - params["smooth"]
            mask = np.where(np.abs(mask - prev) > 0.5, mask, prev + a * (mask - prev)).astype(np.float32)
        state["mask"] = mask
        k = params["edge"] * 3.0
        m = cv2.GaussianBlur(mask, (0, 0), k) if k > 0.3 else mask
        h, w = frame.shape[:2]
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
        bg = self._background(frame, params, state)
        return cv2.blendLinear(frame, bg, m, 1.0 - m)

    @staticmethod
    def _background(frame: np.ndarray, params: dict, state: dict) -> np.ndarray:
        h, w = frame.shape[:2]
        if params["mode"] == "blur":
            # Blur at quarter size: 16x cheaper and a wider blur for the same kernel.
            f = 4
            small = cv2.resize(frame, (max(w // f, 1), max(h // f, 1)), interpolation=cv2.INTER_AREA)
            sigma = 0.5 + params["blur"] * 6.0
            small = cv2.GaussianBlur(small, (0, 0), sigma)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        key = (params["image"], params["color"], w, h)
        if state.get("bg_key") != key:
            if params["image"]:
                img = read_param_image("background.image", params["image"], cv2.IMREAD_COLOR)
                s = max(w / img.shape[1], h / img.shape[0])  # cover the frame, centre crop
                img = cv2.resize(img, (int(np.ceil(img.shape[1] * s)), int(np.ceil(img.shape[0] * s))))
                y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
                bg = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
            else:
                bg = np.empty((h, w, 3), np.uint8)
                bg[:] = color_bgr(params["color"])
            state["bg"], state["bg_key"] = bg, key
        return state["bg"]
