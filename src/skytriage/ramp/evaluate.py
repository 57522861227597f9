"""Scores of a ramp mask against the truth of a simulated exposure.

Per class (cosmic ray, telegraph noise, snowball):

- pixel recall and precision: ``|pred & truth| / |truth|`` and ``/ |pred|``, with the
  class's bit only (a snowball pixel flagged as a cosmic ray is a false cosmic ray);
- event recall: a truth event is found when one of its pixels carries its class's bit
  (cosmic ray, telegraph noise) or half of its pixels do (snowball);
- false events per megapixel: connected groups of flagged pixels of a class that touch
  no truth pixel of that class, per million science pixels.

Telegraph pixels that toggled only once (``Truth.ambiguous``) are left out of every
score. The same function scores any tool whose output can be put as a mask (stcal's jump
flags in the benchmark), with the classes it does not have left empty.

``clear_only=True`` also leaves out what no detector could tell apart, the same way for
every tool (reported beside the full scores, never instead of them):

- *faint telegraph pixels*: toggled at least twice, but no visit of the other state has
  an SNR of :data:`CLEAR_VISIT_SNR` even with the transition reads known, counting only
  the part of the visit that no line plus one lasting step (a faint cosmic ray) explains
  (the simulator's ``visit_snr``); their pixels are not scored;
- *overlapped cosmic rays*: the pixel of the event's largest deposit belongs to another
  event (a snowball or a later cosmic ray over it), so what is left of it is the faint
  spill; they leave the event recall.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from skytriage.ramp.simulate import CR, RTN, SNOWBALL, Truth

CLASSES = {"cr": CR, "rtn": RTN, "snowball": SNOWBALL}
#: Telegraph pixels whose best visit has a lower oracle SNR count as faint (``clear_only``).
CLEAR_VISIT_SNR = 5.0
ANY_EVENT = CR | RTN | SNOWBALL
#: Fraction of a snowball's pixels that must carry bit 4 for it to count as found.
SNOWBALL_FOUND_FRACTION = 0.5


def score(mask: np.ndarray, truth: Truth, *, refpix: int = 4, clear_only: bool = False
          ) -> dict[str, dict[str, float]]:
    """Per-class pixel and event scores of ``mask`` against ``truth``.

    Parameters
    ----------
    mask : numpy.ndarray
        uint16 ``(ny, nx)`` with the ramp bits.
    truth : Truth
    refpix : int
        Reference border (px): its pixels are not scored.
    clear_only : bool
        Leave out faint telegraph pixels and overlapped cosmic rays (see the module).

    Returns
    -------
    dict
        ``{class: {pixel_recall, pixel_precision, event_recall, false_events_per_mpix,
        truth_pixels, flagged_pixels, truth_events}}`` for cr, rtn, snowball, and
        ``any`` (the union of the three bits, for tools that do not classify).
    """
    ny, nx = mask.shape
    science = np.zeros((ny, nx), bool)
    science[refpix:ny - refpix, refpix:nx - refpix] = True
    scored = science & ~truth.ambiguous
    if clear_only:
        scored &= ~_faint_telegraph(truth, (ny, nx))
    mpix = scored.sum() / 1e6
    out = {}
    for name, bit in {**CLASSES, "any": ANY_EVENT}.items():
        pred = (mask & bit > 0) & scored
        true = (truth.mask & bit > 0) & scored
        hit = pred & true
        out[name] = {
            "pixel_recall": _ratio(hit.sum(), true.sum()),
            "pixel_precision": _ratio(hit.sum(), pred.sum()),
            "event_recall": _event_recall(pred, truth, name, clear_only),
            "false_events_per_mpix": _false_events(pred, true) / mpix,
            "truth_pixels": int(true.sum()), "flagged_pixels": int(pred.sum()),
            "truth_events": int(_visible(truth, name, clear_only).sum()),
        }
    return out


def _ratio(num: int, den: int) -> float:
    return float(num / den) if den else float("nan")


def _visible(truth: Truth, name: str, clear_only: bool = False) -> np.ndarray:
    """Boolean over truth.events: the visible events of class ``name`` (any: all); with
    ``clear_only`` not the overlapped ones."""
    events = truth.events
    kinds = events["kind"] if name != "any" else None
    picked = np.ones(len(events), bool) if kinds is None else (kinds == name).to_numpy()
    if clear_only and "overlapped" in events:
        picked = picked & ~events["overlapped"].to_numpy(bool)
    return picked & events["visible"].to_numpy(bool)


def _faint_telegraph(truth: Truth, shape: tuple[int, int]) -> np.ndarray:
    """bool ``(ny, nx)``: visible telegraph pixels whose best visit is below
    :data:`CLEAR_VISIT_SNR` (none when the truth has no ``visit_snr``)."""
    out = np.zeros(shape, bool)
    events = truth.events
    if "visit_snr" not in events:
        return out
    faint = ((events["kind"] == "rtn") & events["visible"].astype(bool)
             & (events["visit_snr"] < CLEAR_VISIT_SNR)).to_numpy()
    out[events["y"].to_numpy()[faint].astype(int), events["x"].to_numpy()[faint].astype(int)] = True
    return out


def _event_recall(pred: np.ndarray, truth: Truth, name: str, clear_only: bool = False
                  ) -> float:
    """Fraction of visible truth events of class ``name`` found in ``pred``."""
    wanted = np.flatnonzero(_visible(truth, name, clear_only))
    ids = truth.event_ids
    owned = ids >= 0
    n_pixels = np.bincount(ids[owned], minlength=len(truth.events))
    n_hit = np.bincount(ids[owned & pred], minlength=len(truth.events))
    wanted = wanted[n_pixels[wanted] > 0]
    if wanted.size == 0:
        return float("nan")
    kinds = truth.events["kind"].to_numpy()[wanted]
    need = np.where(kinds == "snowball",
                    np.maximum(1, SNOWBALL_FOUND_FRACTION * n_pixels[wanted]), 1)
    return float(np.mean(n_hit[wanted] >= need))


def _false_events(pred: np.ndarray, true: np.ndarray) -> int:
    """Connected groups (8-connected) of flagged pixels that touch no truth pixel."""
    labels, n = ndimage.label(pred, np.ones((3, 3), bool))
    if n == 0:
        return 0
    touched = np.bincount(labels[true & pred], minlength=n + 1)
    return int(np.count_nonzero(touched[1:] == 0))


def score_table(scores: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """Rows ``tool, class`` and the score columns, from ``{tool: score(...)}``."""
    rows = [{"tool": tool, "class": name, **values}
            for tool, per_class in scores.items() for name, values in per_class.items()]
    return pd.DataFrame(rows)


def mean_scores(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Scores of several exposures pooled: counts summed, ratios averaged weighted by the
    counts they divide (the recall by truth counts, the precision by flagged counts)."""
    out: dict[str, dict[str, float]] = {}
    for name in runs[0]:
        rows = [r[name] for r in runs]
        truth_px = np.array([r["truth_pixels"] for r in rows], float)
        flagged = np.array([r["flagged_pixels"] for r in rows], float)
        events = np.array([r["truth_events"] for r in rows], float)
        out[name] = {
            "pixel_recall": _weighted([r["pixel_recall"] for r in rows], truth_px),
            "pixel_precision": _weighted([r["pixel_precision"] for r in rows], flagged),
            "event_recall": _weighted([r["event_recall"] for r in rows], events),
            "false_events_per_mpix": float(np.mean([r["false_events_per_mpix"]
                                                    for r in rows])),
            "truth_pixels": int(truth_px.sum()), "flagged_pixels": int(flagged.sum()),
            "truth_events": int(events.sum()),
        }
    return out


def _weighted(values: list[float], weights: np.ndarray) -> float:
    values = np.asarray(values, float)
    ok = np.isfinite(values) & (weights > 0)
    return float(np.average(values[ok], weights=weights[ok])) if ok.any() else float("nan")
