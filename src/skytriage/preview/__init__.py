"""preview: which frames of a dataset are anomalous, and why.

``skytriage.preview.run(paths)`` returns a :class:`PreviewResult` whose ``.write(out_dir)``
writes ``frames.parquet``, ``frames.csv`` and ``report.html``.
"""

from __future__ import annotations

import os

from skytriage.preview.evaluate import Evaluation, evaluate
from skytriage.preview.model import FrameClassifier
from skytriage.preview.pipeline import PreviewResult, measure, rescore, run
from skytriage.preview.train import retrain_and_rescore


def overlays(path: str | os.PathLike) -> dict:
    """Streaks and blobs preview detects in one frame, in full-resolution pixels.

    Returns
    -------
    dict
        ``shape``, ``streaks`` ([x0, y0, x1, y1]), ``blobs`` ([x, y, fwhm, ellipticity,
        theta_deg]); see :func:`skytriage.preview.features.frame_overlays`.
    """
    from skytriage.io import read_frame
    from skytriage.preview.features import frame_overlays

    return frame_overlays(read_frame(path, dtype=None).data)


__all__ = ["Evaluation", "FrameClassifier", "PreviewResult", "evaluate", "measure",
           "overlays", "rescore", "retrain_and_rescore", "run"]
