"""``skytriage.ramp.run``: stream a ramp band by band through the detectors; the result.

Memory: one band holds ``ints x groups x rows x nx`` float32 reads and a few arrays of the
same size; rows per band are chosen so that this stays under ``band_mb``. Between the two
passes only 2-D maps and a sparse list of candidate voxels are kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skytriage.ramp.detect import (
    BAD,
    CR,
    RTN,
    SATURATED,
    SNOWBALL,
    BandResult,
    Candidates,
    RuleSettings,
    analyse_band,
    classify_candidates,
)
from skytriage.ramp.refpix import (
    channel_of_column,
    channel_offsets,
    correct_band,
    reference_read_noise,
)
from skytriage.ramp.source import RampSource, open_ramp, ramp_from_array

#: Rows read above and below a band so that the row-noise smoothing has context.
BAND_MARGIN = 16
#: Arrays of band size alive at once in pass 1 (reads, differences, z, steps, masks).
_BAND_COPIES = 8


@dataclass
class RampResult:
    """What the ramp detectors found in one exposure.

    Attributes
    ----------
    mask : numpy.ndarray
        uint16 ``(ny, nx)``: 1 cosmic ray, 2 telegraph noise, 4 snowball, 8 bad
        (non-finite reads), 32 saturated. A snowball's pixels carry 4, not 1; a
        telegraph pixel under a snowball's halo carries 2 and 4.
    slope : numpy.ndarray
        float32 ``(ny, nx)``: DN per group, from the differences without jumps,
        telegraph transitions or saturated reads; NaN where none is left.
    detections : list of dict
        One per event: ``type`` (cr, rtn, snowball), ``int``, ``first_group`` (first
        read that shows it), ``x``, ``y`` (centroid, px), ``n_pixels``,
        ``mean_intensity`` / ``max_intensity`` (e-, the step of the pixels), ``extent``
        ([width, height] px), and the fit metrics of its kind.
    source : str
        The input path.
    info : dict
        Gain, read noise, saturation, shape, timings.
    probabilities : numpy.ndarray or None
        float32 ``(4, ny, nx)`` from the learned network (background, CR, RTN, snowball)
        where it ran, else None.
    """

    mask: np.ndarray
    slope: np.ndarray
    detections: list[dict]
    source: str
    info: dict = field(default_factory=dict)
    probabilities: np.ndarray | None = None

    def counts(self) -> dict[str, int]:
        """Events per type and flagged pixels per bit."""
        out = {f"{kind}_events": sum(d["type"] == kind for d in self.detections)
               for kind in ("cr", "rtn", "snowball")}
        for name, bit in (("cr", CR), ("rtn", RTN), ("snowball", SNOWBALL),
                          ("saturated", SATURATED), ("bad", BAD)):
            out[f"{name}_pixels"] = int(np.count_nonzero(self.mask & bit))
        return out

    def write(self, out_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Path]:
        """Write ``mask.fits``, ``slope.fits``, ``detections.json`` and ``report.html``."""
        from skytriage.ramp.report import write_outputs

        return write_outputs(self, out_dir, plots=plots)


def run(ramp: str | os.PathLike | np.ndarray | RampSource, *, refpix: int = 4,
        gain: float | None = None, read_noise: float | None = None,
        saturation: float | None = None, n_outputs: int | None = None,
        settings: RuleSettings | None = None, model=None, band_mb: float = 256.0,
        progress: Callable[[int, int], None] | None = None) -> RampResult:
    """Find cosmic rays, telegraph noise and snowballs in an up-the-ramp exposure.

    Parameters
    ----------
    ramp : path, array or RampSource
        A FITS file (3-D ``(groups, y, x)`` or 4-D ``(ints, groups, y, x)``, DN) or an
        array of the same shape.
    refpix : int
        Reference-pixel border (px); 0 for none.
    gain, read_noise, saturation : float, optional
        e-/DN, e- per read and DN; override the header (``GAIN``, ``RDNOISE``,
        ``SATURATE``). Without any read noise it is measured on the reference pixels.
    n_outputs : int, optional
        Amplifier outputs (header ``NOUTPUTS``, default 4).
    settings : RuleSettings, optional
        Thresholds of the rules.
    model : RampNet, optional
        A learned network to fuse with the rules (see :mod:`skytriage.ramp.model`).
    band_mb : float
        Memory budget of one band in MB.
    progress : callable, optional
        ``progress(done_rows, total_rows)``.

    Returns
    -------
    RampResult
    """
    t0 = time.perf_counter()
    settings = settings or RuleSettings()
    source = _as_source(ramp, refpix, gain, read_noise, saturation)
    ints, groups, ny, nx = source.shape
    outputs = int(n_outputs or source.header.get("NOUTPUTS", 4))
    offsets = channel_offsets(source, refpix, outputs)
    channel = channel_of_column(nx, outputs)
    rn = source.read_noise
    if rn is None:
        measured = reference_read_noise(source, refpix, outputs, offsets)
        rn = (measured * source.gain if measured is not None
              else science_read_noise(source, offsets, refpix, channel, band_mb))
    mask = np.zeros((ny, nx), np.uint16)
    slope = np.full((ny, nx), np.nan, np.float32)
    parts: list[Candidates] = []
    rtn_rows: list[dict] = []
    patches = model.new_collector() if model is not None else None
    rows_per_band = band_rows(source.shape, band_mb)
    for y0 in range(0, ny, rows_per_band):
        y1 = min(ny, y0 + rows_per_band)
        band, sat = read_corrected_band(source, y0, y1, offsets, refpix, channel)
        result = analyse_band(band, sat, source.gain, rn, settings, y0=y0,
                              collector=patches)
        _store(result, mask, slope, y0, y1, source.gain, refpix, (ny, nx))
        parts.append(_inside(result.candidates, refpix, (ny, nx)))
        rtn_rows += [r for r in result.rtn if _science(r["y"], r["x"], refpix, (ny, nx))]
        if progress is not None:
            progress(y1, ny)
    t1 = time.perf_counter()
    found = classify_candidates(Candidates.concat(parts), (ny, nx), settings)
    snowballs = [e for e in found.events if e["type"] == "snowball"]
    rtn_rows = [r for r in rtn_rows if not _snowball_step(r, snowballs)]
    probabilities = None
    if model is not None:
        fused = model.fuse(patches, found, rtn_rows, (ny, nx))
        found, rtn_rows, probabilities = fused.classified, fused.rtn_rows, fused.probabilities
    rtn_mask = np.zeros((ny, nx), bool)
    for row in rtn_rows:
        rtn_mask[row["y"], row["x"]] = True
    found.cr &= ~rtn_mask
    detections = found.events + [_rtn_detection(r) for r in rtn_rows]
    mask[found.cr] |= CR
    mask[rtn_mask] |= RTN
    mask[found.snowball] |= SNOWBALL
    info = {"shape": list(source.shape), "gain": source.gain, "read_noise_e": rn,
            "saturation_dn": source.saturation, "refpix": refpix, "n_outputs": outputs,
            "rows_per_band": rows_per_band, "pass1_s": round(t1 - t0, 3),
            "pass2_s": round(time.perf_counter() - t1, 3), "model": model is not None}
    return RampResult(mask, slope, detections, source.path, info, probabilities)


def science_read_noise(source: RampSource, offsets: np.ndarray, refpix: int,
                       channel: np.ndarray, band_mb: float) -> float:
    """Read noise per read (e-) measured on the fainter half of the science pixels.

    Differences two apart in one integration (or, with two groups, of consecutive
    integrations) share no read, so ``d[k + 2] - d[k]`` has variance
    ``2 (2 sigma_read^2 + f)`` whatever the flux ``f``; its robust scatter (MAD) over all
    faint pixels gives ``sigma_read``. Used when neither the header nor reference pixels
    give it.
    """
    rows = min(source.shape[2], band_rows(source.shape, band_mb))
    reads, sat = read_corrected_band(source, 0, rows, offsets, refpix, channel)
    diffs = np.diff(reads * np.float32(source.gain), axis=1)
    diffs[sat[:, 1:]] = np.nan
    if diffs.shape[1] >= 3:
        pairs = diffs[:, 2:] - diffs[:, :-2]
    else:
        pairs = diffs[1:, :1] - diffs[:-1, :1]
    flux = np.nanmedian(diffs.reshape(-1, *diffs.shape[2:]), axis=0)
    faint = np.isfinite(flux) & (flux <= np.nanmedian(flux))
    values = pairs[:, :, faint]
    values = values[np.isfinite(values)]
    scatter = 1.4826 * np.median(np.abs(values - np.median(values)))
    variance = (scatter**2 / 2 - max(float(np.median(flux[faint])), 0.0)) / 2
    return float(np.sqrt(max(variance, 1.0)))


def band_rows(shape: tuple[int, int, int, int], band_mb: float) -> int:
    """Rows per band so that a band's working arrays stay near ``band_mb`` MB."""
    ints, groups, _, nx = shape
    per_row = _BAND_COPIES * 4 * ints * groups * nx
    return int(max(8, min(shape[2], band_mb * 1e6 // per_row)))


def _as_source(ramp, refpix, gain, read_noise, saturation) -> RampSource:
    if isinstance(ramp, RampSource):
        return ramp
    if isinstance(ramp, np.ndarray):
        return ramp_from_array(ramp, gain=gain or 1.0, read_noise=read_noise,
                               saturation=saturation if saturation is not None else 65535.0,
                               refpix=refpix)
    return open_ramp(ramp, refpix=refpix, gain=gain, read_noise=read_noise,
                     saturation=saturation)


def read_corrected_band(source: RampSource, y0: int, y1: int, offsets: np.ndarray, refpix: int,
               channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrected reads (DN) and saturation flags of rows ``y0:y1``, all integrations."""
    ints = source.shape[0]
    lo, hi = max(0, y0 - BAND_MARGIN), min(source.shape[2], y1 + BAND_MARGIN)
    reads, sat = [], []
    for integration in range(ints):
        raw = source.band(integration, lo, hi)
        sat.append(raw[:, y0 - lo:y1 - lo] >= source.saturation)
        corrected = correct_band(raw, offsets[integration], refpix, channel)
        reads.append(corrected[:, y0 - lo:y1 - lo])
    return np.stack(reads), np.stack(sat)


def _store(result: BandResult, mask: np.ndarray, slope: np.ndarray, y0: int, y1: int,
           gain: float, refpix: int, shape: tuple[int, int]) -> None:
    """Copy a band's 2-D results into the full-size maps."""
    rows = slice(y0, y1)
    band_slope = result.slope / np.float32(gain)
    band_slope[result.saturated_first | result.bad] = np.nan
    slope[rows] = band_slope
    mask[rows][result.saturated] |= SATURATED
    mask[rows][result.bad] |= BAD
    if refpix:
        ny, nx = shape
        science = np.zeros((y1 - y0, nx), bool)
        ys = np.arange(y0, y1)
        science[(ys >= refpix) & (ys < ny - refpix), refpix:nx - refpix] = True
        slope[rows][~science] = np.nan
        mask[rows][~science] = 0


def _science(y: int, x: int, refpix: int, shape: tuple[int, int]) -> bool:
    ny, nx = shape
    return refpix <= y < ny - refpix and refpix <= x < nx - refpix


def _inside(cand: Candidates, refpix: int, shape: tuple[int, int]) -> Candidates:
    """Candidates on science pixels only."""
    ny, nx = shape
    keep = ((cand.y >= refpix) & (cand.y < ny - refpix) & (cand.x >= refpix)
            & (cand.x < nx - refpix))
    return cand.select(keep)


#: Telegraph fits within this many *measured* snowball radii (the measured radius already
#: spans the halo) are checked against the snowball's step.
SNOWBALL_REACH = 1.15


def _snowball_step(row: dict, snowballs: list[dict]) -> bool:
    """Whether a telegraph fit inside a snowball's halo (:data:`SNOWBALL_REACH` measured
    radii) owes its telegraph shape to the snowball's step.

    That is when it puts a rise at the snowball's own group or the group after (the halo
    still grows a little there; one group earlier too for a windowed level change) and
    fewer than two transitions remain without those rises: the fit then took the faint
    halo step for a telegraph rise. A pixel that toggles elsewhere in the ramp as well
    is kept.
    """
    for ball in snowballs:
        if np.hypot(row["x"] - ball["x"], row["y"] - ball["y"]) > SNOWBALL_REACH * ball["radius"]:
            continue
        group = ball["first_group"]
        at_step = [i == ball["int"] and group - windowed <= g <= group + 1 and sign > 0
                   for i, g, sign, windowed in row["transition_groups"]]
        if any(at_step) and len(at_step) - sum(at_step) < 2:
            return True
    return False


def _rtn_detection(row: dict) -> dict:
    """A telegraph-noise pixel as a detections.json entry."""
    detection = {"type": "rtn", "int": 0, "first_group": row["first_group"],
                 "x": float(row["x"]), "y": float(row["y"]), "n_pixels": 1,
                 "mean_intensity": row["amplitude"], "max_intensity": row["amplitude"],
                 "extent": [1, 1]}
    detection.update({k: v for k, v in row.items() if k not in ("x", "y", "first_group")})
    return detection
