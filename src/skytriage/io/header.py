"""Frame metadata from FITS headers (gain, read noise, exposure, date) and ADU/electron units."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from skytriage.errors import SkytriageInputError

# EGAIN first: camera software (ASCOM, N.I.N.A., SharpCap with ZWO/QHY) writes the gain
# *setting* (e.g. 100) in GAIN and the conversion factor in e-/ADU in EGAIN.
GAIN_KEYS = ("EGAIN", "GAIN")
READNOISE_KEYS = ("RDNOISE", "READNOIS")
EXPTIME_KEYS = ("EXPTIME", "EXPOSURE")


@dataclass
class FrameMeta:
    """What a triage step needs to know about a frame besides its pixels.

    Attributes
    ----------
    gain : float
        Detector gain in e-/ADU: header ``EGAIN`` when present (cameras that write
        their gain *setting* in ``GAIN`` put e-/ADU there), else ``GAIN``; 1.0 when absent.
    readnoise : float or None
        Read noise in e- (header ``RDNOISE`` or ``READNOIS``).
    exptime : float or None
        Exposure time in s (header ``EXPTIME`` or ``EXPOSURE``).
    date_obs : str or None
        Start of the exposure as an ISO 8601 string (``DATE-OBS``, joined with
        ``TIME-OBS`` when the date carries no time); None when absent or unparseable.
    bunit : str
        Pixel unit (header ``BUNIT``; ``"adu"`` when absent).
    """

    gain: float
    readnoise: float | None
    exptime: float | None
    date_obs: str | None
    bunit: str


def parse_date_obs(text: str | None) -> datetime | None:
    """Parse an ISO 8601 date or date-time into a naive UTC ``datetime``.

    Parameters
    ----------
    text : str or None
        ``"2024-03-01"``, ``"2024-03-01T22:10:05.25"``, ``"...Z"`` or with an offset.

    Returns
    -------
    datetime or None
        Naive (UTC) datetime, or None when ``text`` is empty or not ISO 8601.
    """
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


# cards that carry the start time when DATE-OBS holds only the date (UT: e.g. SAAO, IRAF)
_TIME_KEYS = ("TIME-OBS", "UT", "UTSTART", "UT-START")


def date_obs_from_header(header: Mapping[str, Any]) -> str | None:
    """The ``DATE-OBS`` of a header as an ISO string, joined with ``TIME-OBS`` (or ``UT``,
    ``UTSTART``) when the date carries no time.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
        Header to look in.

    Returns
    -------
    str or None
        The date (and time) as written in the header, or None when absent or not ISO 8601.
    """
    date = header.get("DATE-OBS")
    if not isinstance(date, str) or not date.strip():
        return None
    date = date.strip()
    time_obs = next((header.get(k) for k in _TIME_KEYS if isinstance(header.get(k), str)), None)
    if "T" not in date and " " not in date and isinstance(time_obs, str) and time_obs.strip():
        date = f"{date}T{time_obs.strip()}"
    return date if parse_date_obs(date) is not None else None


def _header_number(headers: list[Mapping[str, Any]], keys: tuple[str, ...]):
    """The first of ``keys`` present in ``headers`` (in order) and its raw value."""
    for header in headers:
        for key in keys:
            value = header.get(key)
            if value is not None and not (isinstance(value, str) and not value.strip()):
                return key, value
    return None, None


def _checked(path: str, name: str, value: Any, *, positive: bool) -> float:
    """``value`` as a finite float, >= 0 (> 0 when ``positive``), else an input error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SkytriageInputError(path, f"{name} = {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise SkytriageInputError(path, f"{name} = {value!r} must be finite and {bound}")
    return number


def _pick(path: str, headers: list, keys: tuple[str, ...], override: Any, name: str,
          *, positive: bool) -> float | None:
    """The override when given, else the header value, checked; None when neither exists."""
    if override is not None:
        return _checked(path, name, override, positive=positive)
    key, value = _header_number(headers, keys)
    return None if key is None else _checked(path, f"header {key}", value, positive=positive)


def read_meta(
    header: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    gain: float | None = None,
    readnoise: float | None = None,
    exptime: float | None = None,
    fallback: Mapping[str, Any] | None = None,
) -> FrameMeta:
    """Collect gain, read noise, exposure time, date and unit for one frame.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
        Header of the HDU that holds the data.
    path : str or os.PathLike
        The file, named in errors.
    gain, readnoise, exptime : float, optional
        Overrides in e-/ADU, e- and s; they win over the header.
    fallback : astropy.io.fits.Header or mapping, optional
        A second header searched when ``header`` lacks a keyword (the primary header
        when the data sit in an extension).

    Returns
    -------
    FrameMeta

    Raises
    ------
    SkytriageInputError
        When a value (given or from the header) is not a number, the gain is not > 0,
        or the read noise or exposure time is negative.
    """
    path = os.fspath(path)
    headers = [header] if fallback is None else [header, fallback]
    gain = _pick(path, headers, GAIN_KEYS, gain, "gain", positive=True)
    readnoise = _pick(path, headers, READNOISE_KEYS, readnoise, "readnoise", positive=False)
    exptime = _pick(path, headers, EXPTIME_KEYS, exptime, "exptime", positive=False)
    date_obs = next(filter(None, (date_obs_from_header(h) for h in headers)), None)
    bunit = next((str(h["BUNIT"]).strip() for h in headers if h.get("BUNIT")), "adu")
    return FrameMeta(gain=1.0 if gain is None else gain, readnoise=readnoise, exptime=exptime,
                     date_obs=date_obs, bunit=bunit)


def _positive_gain(gain: float) -> float:
    """``gain`` as a float, or ValueError when it is not finite and > 0."""
    gain = float(gain)
    if not math.isfinite(gain) or gain <= 0:
        raise ValueError(f"gain must be finite and > 0 e-/ADU, got {gain!r}")
    return gain


def adu_to_electrons(data: np.ndarray, gain: float) -> np.ndarray:
    """Convert counts from ADU to electrons.

    Parameters
    ----------
    data : numpy.ndarray
        Pixel values in ADU, any shape.
    gain : float
        Gain in e-/ADU, > 0.

    Returns
    -------
    numpy.ndarray
        ``data * gain`` in e-, float32, same shape.
    """
    return np.multiply(data, np.float32(_positive_gain(gain)), dtype=np.float32)


def electrons_to_adu(data: np.ndarray, gain: float) -> np.ndarray:
    """Convert counts from electrons to ADU.

    Parameters
    ----------
    data : numpy.ndarray
        Pixel values in e-, any shape.
    gain : float
        Gain in e-/ADU, > 0.

    Returns
    -------
    numpy.ndarray
        ``data / gain`` in ADU, float32, same shape.
    """
    return np.divide(data, np.float32(_positive_gain(gain)), dtype=np.float32)
