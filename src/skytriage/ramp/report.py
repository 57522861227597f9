"""Outputs of ``skytriage ramp``: mask.fits, slope.fits, detections.json and report.html."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits

from skytriage.io import atomic_path, write_json
from skytriage.ramp.detect import CR, RTN, SATURATED, SNOWBALL
from skytriage.report import HtmlReport, zscale_image

if TYPE_CHECKING:
    from skytriage.ramp.pipeline import RampResult

_COLOURS = {"cr": (1.0, 0.1, 0.1), "rtn": (0.1, 0.9, 0.2), "snowball": (0.1, 0.5, 1.0),
            "saturated": (1.0, 0.85, 0.0)}
_BITS = {"cr": CR, "rtn": RTN, "snowball": SNOWBALL, "saturated": SATURATED}
EVENTS_PER_TYPE = 4


def write_outputs(result: RampResult, out_dir: str | os.PathLike, *,
                  plots: bool = True) -> dict[str, Path]:
    """Write the result files into ``out_dir`` atomically; return their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"mask": out / "mask.fits", "slope": out / "slope.fits",
             "detections": out / "detections.json"}
    header = fits.Header()
    header["BITS"] = ("1 CR, 2 RTN, 4 snowball, 8 bad, 32 saturated", "mask bits")
    header["SOURCE"] = (os.path.basename(result.source)[:60], "input ramp")
    with atomic_path(paths["mask"]) as tmp:
        fits.PrimaryHDU(result.mask, header=header).writeto(tmp)
    slope_header = fits.Header()
    slope_header["BUNIT"] = ("DN/group", "slope without jumps")
    with atomic_path(paths["slope"]) as tmp:
        fits.PrimaryHDU(result.slope, header=slope_header).writeto(tmp)
    write_json(paths["detections"], {"source": result.source, "info": result.info,
                                     "counts": result.counts(),
                                     "detections": result.detections})
    if plots:
        paths["report"] = write_report(result, out / "report.html")
    return paths


def mask_figure(result: RampResult, max_side: int = 768) -> plt.Figure:
    """The slope image (zscale) with the mask bits drawn over it in colour."""
    slope = np.nan_to_num(result.slope, nan=float(np.nanmedian(result.slope)))
    factor = max(1, int(np.ceil(max(slope.shape) / max_side)))
    image = zscale_image(slope, max_side)
    fig, ax = plt.subplots(figsize=(7, 7 * image.shape[0] / image.shape[1]))
    ax.imshow(image, cmap="gray", origin="lower")
    ny, nx = image.shape
    overlay = np.zeros((ny, nx, 4), np.float32)
    for name in ("saturated", "snowball", "rtn", "cr"):
        flagged = _block_any(result.mask & _BITS[name] > 0, factor)[:ny, :nx]
        overlay[flagged] = (*_COLOURS[name], 0.85)
    ax.imshow(overlay, origin="lower", interpolation="nearest")
    handles = [plt.Line2D([], [], marker="s", ls="", color=_COLOURS[n], label=n)
               for n in _COLOURS]
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
    ax.set_title(f"{os.path.basename(result.source)}: mask over the slope image"
                 + (f" (binned {factor}x{factor})" if factor > 1 else ""), fontsize=9)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    fig.tight_layout()
    return fig


def _block_any(mask: np.ndarray, factor: int) -> np.ndarray:
    """True for every ``factor x factor`` block that holds a True pixel."""
    if factor == 1:
        return mask
    ny, nx = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    return mask[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).any(axis=(1, 3))


def ramps_figure(result: RampResult, reads_of: Callable[[int, int], np.ndarray]
                 ) -> plt.Figure | None:
    """Reads against group for a few events of each type (first integration).

    ``reads_of(y, x)`` returns the DN of one pixel at every group of integration 0.
    """
    picked = {kind: _spread([d for d in result.detections if d["type"] == kind
                             and d.get("int", 0) == 0])
              for kind in ("cr", "rtn", "snowball")}
    kinds = [k for k, v in picked.items() if v]
    if not kinds:
        return None
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for d in picked[kind]:
            y, x = int(round(d["y"])), int(round(d["x"]))
            series = np.asarray(reads_of(y, x), float)
            ax.plot(series - series[0], lw=1, label=f"({x}, {y})")
            ax.axvline(d["first_group"], color="0.7", lw=0.6, ls=":")
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("group")
        ax.set_ylabel("DN - first read")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _spread(events: list[dict]) -> list[dict]:
    """Up to ``EVENTS_PER_TYPE`` events spread over the ramp (by first group)."""
    events = sorted(events, key=lambda d: d["first_group"] or 0)
    if len(events) <= EVENTS_PER_TYPE:
        return events
    step = len(events) / EVENTS_PER_TYPE
    return [events[int(i * step + step / 2)] for i in range(EVENTS_PER_TYPE)]


def write_report(result: RampResult, path: Path,
                 reads_of: Callable[[int, int], np.ndarray] | None = None) -> Path:
    """A self-contained report: counts, the mask over the image, example ramps.

    ``reads_of(y, x)`` gives one pixel's reads; by default they are read from the
    input file when it exists.
    """
    import pandas as pd

    report = HtmlReport(f"skytriage ramp: {os.path.basename(result.source)}")
    report.heading("Counts")
    report.table(pd.DataFrame([result.counts()]))
    report.heading("Mask")
    report.figure(mask_figure(result), "Cosmic rays (red), telegraph noise (green), "
                                       "snowballs (blue), saturated (yellow).")
    if reads_of is None and os.path.exists(result.source):
        from skytriage.ramp.source import open_ramp

        source = open_ramp(result.source, refpix=result.info.get("refpix", 4))
        def reads_of(y: int, x: int) -> np.ndarray:
            return source.rows(0, np.array([y]))[:, 0, x]
    fig = ramps_figure(result, reads_of) if reads_of is not None else None
    if fig is not None:
        report.heading("Ramps of a few events per type")
        report.figure(fig, "Reads of the event's central pixel; dotted: first group "
                           "that shows the event.")
    return report.write(path)
