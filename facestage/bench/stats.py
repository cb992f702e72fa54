"""Summaries every benchmark reports the same way: the median and the spread of one figure's samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summary(samples: Sequence[float], digits: int = 2) -> dict[str, float | int]:
    """``median`` with ``p10``/``p90`` (the spread a noisy shared machine gives) plus ``min``/``max``/``n``.

    p10–p90 rather than min–max: one descheduled frame on a shared 2-core machine says nothing about the
    code, but a wide p10–p90 band does (the run was contended and its median should not be trusted)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        return {"median": float("nan"), "p10": float("nan"), "p90": float("nan"), "min": float("nan"),
                "max": float("nan"), "n": 0}
    p10, med, p90 = np.percentile(a, [10, 50, 90])
    return {"median": round(float(med), digits), "p10": round(float(p10), digits),
            "p90": round(float(p90), digits), "min": round(float(a.min()), digits),
            "max": round(float(a.max()), digits), "n": int(a.size)}
