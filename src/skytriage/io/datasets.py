"""Group input files and folders into datasets (one field, one night) of ordered frames."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from skytriage.errors import SkytriageInputError
from skytriage.io.fits import scan_frame
from skytriage.io.header import parse_date_obs

FRAME_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fits.gz")
_DIGITS = re.compile(r"(\d+)")


@dataclass
class Dataset:
    """Frames of one field or sequence, in observing order.

    Attributes
    ----------
    name : str
        The folder name (``"night2/field1"`` when two datasets share a folder name).
    root : str
        The folder, as given or joined from what was given.
    paths : list of str
        Frame files, ordered by ``DATE-OBS`` when every frame has one, else by natural
        name order (``frame_2`` before ``frame_10``).
    """

    name: str
    root: str
    paths: list[str]


def is_frame_name(name: str) -> bool:
    """True for file names with a FITS frame suffix (case-insensitive, see FRAME_SUFFIXES)."""
    return name.lower().endswith(FRAME_SUFFIXES) and not name.startswith(".")


def natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs of ``name`` by value: ``f2`` before ``f10``."""
    parts = _DIGITS.split(os.path.basename(name).lower())
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def _frames_in(folder: str) -> list[str]:
    """Frame files directly inside ``folder``, joined to it as given."""
    with os.scandir(folder) as entries:
        return [os.path.join(folder, e.name) for e in entries
                if is_frame_name(e.name) and e.is_file()]


def _subfolders(folder: str) -> list[str]:
    """Visible subfolders of ``folder`` in natural name order."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    return [os.path.join(folder, name) for name in sorted(names, key=natural_key)]


def _folder_name(folder: str) -> str:
    """The last component of ``folder``, also for ``"."`` or a trailing slash."""
    return os.path.basename(os.path.abspath(folder)) or os.path.abspath(folder)


def _order(paths: list[str], errors: list[SkytriageInputError]) -> list[str]:
    """Drop frames whose headers cannot be read (into ``errors``); order the rest."""
    dates = {}
    for path in dict.fromkeys(paths):
        try:
            dates[path] = parse_date_obs(scan_frame(path))
        except SkytriageInputError as exc:
            errors.append(exc)
    kept = sorted(dates, key=natural_key)
    if kept and all(date is not None for date in dates.values()):
        kept.sort(key=lambda path: dates[path])  # stable: ties keep the name order
    return kept


def _folder_groups(folder: str) -> list[tuple[str, list[str]]]:
    """``(root, frames)`` for a folder of frames, or one per frame-holding subfolder."""
    frames = _frames_in(folder)
    if frames:
        return [(folder, frames)]
    groups = [(sub, _frames_in(sub)) for sub in _subfolders(folder)]
    return [(root, frames) for root, frames in groups if frames]


def _unique_names(roots: list[str]) -> list[str]:
    """Folder names of ``roots``, qualified by the parent folder where two would clash."""
    names = [_folder_name(root) for root in roots]
    return [f"{_folder_name(os.path.dirname(os.path.abspath(root)))}/{name}"
            if names.count(name) > 1 else name for root, name in zip(roots, names, strict=True)]


def _gather(inputs: Iterable[str | os.PathLike], errors: list[SkytriageInputError]):
    """``(root, frames)`` groups for all inputs: folders first-come, loose files by parent."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for item in inputs:
        path = os.fspath(item)
        if os.path.isdir(path):
            found = _folder_groups(path)
            if not found:
                errors.append(SkytriageInputError(
                    path, f"folder holds no frames ({', '.join('*' + s for s in FRAME_SUFFIXES)})"))
        elif os.path.isfile(path):
            found = [(os.path.dirname(path) or os.curdir, [path])]
        else:
            errors.append(SkytriageInputError(path, "no such file or folder"))
            continue
        for root, frames in found:
            key = os.path.realpath(root)
            groups.setdefault(key, (root, []))[1].extend(frames)
    return list(groups.values())


def find_datasets(
    inputs: Iterable[str | os.PathLike],
) -> tuple[list[Dataset], list[SkytriageInputError]]:
    """Find the datasets in files and folders given on a command line.

    A folder holding frames is one dataset named after the folder. A folder holding no
    frames but subfolders that do (a night) gives one dataset per subfolder. Loose files
    form one dataset per parent folder. Only headers are read.

    Parameters
    ----------
    inputs : iterable of str or os.PathLike
        Files and folders; paths are kept as given.

    Returns
    -------
    datasets : list of Dataset
        In the order of the inputs, each with at least one frame.
    errors : list of SkytriageInputError
        Missing paths, folders without frames and files whose headers cannot be read
        (or that hold no image); the other frames are kept.
    """
    errors: list[SkytriageInputError] = []
    groups = _gather(inputs, errors)
    ordered = [(root, _order(frames, errors)) for root, frames in groups]
    ordered = [(root, frames) for root, frames in ordered if frames]
    names = _unique_names([root for root, _ in ordered])
    datasets = [Dataset(name=name, root=root, paths=frames)
                for name, (root, frames) in zip(names, ordered, strict=True)]
    return datasets, errors
