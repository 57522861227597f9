"""preview: which frames of a dataset are anomalous, and why.

``skytriage.preview.run(paths)`` returns a :class:`PreviewResult` whose ``.write(out_dir)``
writes ``frames.parquet``, ``frames.csv`` and ``report.html``.
"""

from skytriage.preview.pipeline import PreviewResult, run

__all__ = ["PreviewResult", "run"]
