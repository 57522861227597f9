"""A self-contained HTML report: headings, text, tables and PNG figures inlined as base64.

One file that opens anywhere, offline, at the telescope. Figures are matplotlib (Agg) PNGs
so that the same pictures serve the README.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from astropy.visualization import ZScaleInterval  # noqa: E402

from skytriage import __version__  # noqa: E402

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f3f3f3} figure{margin:1em 0} figcaption{font-size:.85em;color:#555}
img{max-width:100%} .meta{color:#777;font-size:.8em}
"""


def figure_png(fig: plt.Figure, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def zscale_image(data: np.ndarray, max_side: int = 512) -> np.ndarray:
    """A display version of a frame: block-averaged to at most ``max_side`` px, zscaled to 0..1.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
    max_side : int
        Longest side of the result in pixels.

    Returns
    -------
    ndarray of float32, shape (≤ max_side, ≤ max_side)
    """
    factor = max(1, int(np.ceil(max(data.shape) / max_side)))
    ny, nx = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
    small = data[:ny, :nx].astype(np.float32)
    small = small.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
    lo, hi = ZScaleInterval().get_limits(small)
    return np.clip((small - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


class HtmlReport:
    """Build a report section by section, then :meth:`write` it atomically.

    Parameters
    ----------
    title : str
        The page title and top heading.
    """

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []

    def heading(self, text: str) -> None:
        """Start a section."""
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        """A paragraph of plain text."""
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, frame: pd.DataFrame, float_format: str = "{:.3g}") -> None:
        """A table; floats shown with ``float_format``."""
        formatters = {c: float_format.format for c in frame.columns
                      if pd.api.types.is_float_dtype(frame[c])}
        self._parts.append(frame.to_html(index=False, formatters=formatters, border=0,
                                         escape=True))

    def figure(self, fig_or_png: plt.Figure | bytes, caption: str = "") -> bytes:
        """Inline a figure (matplotlib Figure or PNG bytes); returns the PNG bytes."""
        png = fig_or_png if isinstance(fig_or_png, bytes) else figure_png(fig_or_png)
        encoded = base64.b64encode(png).decode("ascii")
        self._parts.append(f'<figure><img src="data:image/png;base64,{encoded}">'
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return png

    def render(self) -> str:
        """The whole page as a string."""
        body = "\n".join(self._parts)
        return (f"<!doctype html><html><head><meta charset='utf-8'>"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                f"<body><h1>{html.escape(self.title)}</h1>{body}"
                f"<p class='meta'>skytriage {__version__}</p></body></html>")

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page atomically and return its path."""
        from skytriage.io.write import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(self.render(), encoding="utf-8")
        return path
