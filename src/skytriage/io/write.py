"""Atomic writers: FITS with provenance, ECSV, Parquet, CSV and JSON.

Every writer writes to a hidden temporary file in the destination folder, flushes it to
disk, then renames it over the destination (``os.replace``). A reader therefore sees the
old file or the new one, never half of one; when writing fails the temporary file is
removed and the old file keeps its content.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.table import Table

import skytriage


def _fsync_path(path: str, *, directory: bool = False) -> None:
    """Flush a file (or a folder's entry list) to disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file. Its folder must exist.

    Yields
    ------
    str
        A hidden name in the same folder that keeps every suffix of ``path`` (so that
        writers choosing a format or compression by suffix still work).

    Notes
    -----
    If the block raises, or the rename fails, the temporary file is removed and the
    exception propagates; an existing ``path`` is left untouched.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".tmp-{secrets.token_hex(4)}-{name}")
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise
    if os.name == "posix":
        _fsync_path(folder or os.curdir, directory=True)


def _provenance_cards(header: fits.Header, provenance: Mapping[str, Any] | None) -> None:
    """Add SKYTVER, SKYTCMD, DATE and one HISTORY card per parameter to ``header``."""
    provenance = provenance or {}
    header["SKYTVER"] = (skytriage.__version__, "skytriage version")
    if provenance.get("command"):
        header["SKYTCMD"] = (str(provenance["command"]), "command that wrote this file")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    header["DATE"] = (now, "UTC time this file was written")
    for name, value in (provenance.get("parameters") or {}).items():
        header.add_history(f"{name} = {value}")


def write_fits(
    path: str | os.PathLike,
    data: np.ndarray,
    header: fits.Header | None = None,
    *,
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write an image (or cube) to a FITS primary HDU, atomically, with provenance cards.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; a ``.gz`` suffix writes gzip.
    data : numpy.ndarray
        Pixels, numpy order (``(y, x)``, ``(t, y, x)``, ...). uint16 is stored as int16
        with ``BZERO = 32768``; bool is stored as uint8.
    header : astropy.io.fits.Header, optional
        Cards to keep (copied; structural cards are redone by astropy, non-standard
        cards are fixed silently).
    provenance : dict, optional
        ``{"command": str, "parameters": dict}``: the command goes into ``SKYTCMD``
        (long strings continue over CONTINUE cards), each parameter into a
        ``HISTORY name = value`` card.
    overwrite : bool, default True
        When False, an existing ``path`` raises FileExistsError.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{os.fspath(path)}: exists and overwrite=False")
    data = np.asarray(data)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    header = fits.Header() if header is None else header.copy(strip=True)
    _provenance_cards(header, provenance)
    hdu = fits.PrimaryHDU(data=data, header=header)
    with atomic_path(path) as tmp:
        hdu.writeto(tmp, output_verify="silentfix")
    return Path(path)


def _to_table(table: Table | pd.DataFrame) -> Table:
    """An astropy Table from a Table or a pandas DataFrame (the index is dropped)."""
    return Table.from_pandas(table) if isinstance(table, pd.DataFrame) else table


def write_ecsv(path: str | os.PathLike, table: Table | pd.DataFrame) -> Path:
    """Write a table as ECSV (typed, with units and metadata), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, usually ``*.ecsv``.
    table : astropy.table.Table or pandas.DataFrame
        The rows; a DataFrame's index is not written.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        _to_table(table).write(tmp, format="ascii.ecsv", overwrite=True)
    return Path(path)


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write a DataFrame as Parquet with pyarrow, atomically (the index is not written).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)
    return Path(path)


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV, atomically (the index is not written).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON data.

    numpy scalars and arrays become numbers and lists, paths become strings, dates ISO
    strings, tuples and sets lists, mapping keys strings, and NaN or infinite floats
    None (JSON ``null``). Anything else is returned unchanged, for ``json`` to reject.
    """
    if isinstance(obj, Mapping):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset | np.ndarray):
        return [to_jsonable(value) for value in (obj.tolist() if isinstance(obj, np.ndarray)
                                                 else obj)]
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return os.fspath(obj)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (``indent=2``), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    obj : Any
        JSON data, possibly holding numpy scalars or arrays, paths, dates, NaN or inf
        (written as ``null``); see :func:`to_jsonable`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        When ``obj`` holds something JSON cannot encode; nothing is written.
    """
    data = to_jsonable(obj)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, allow_nan=False)
        f.write("\n")
    return Path(path)
