"""Reading the small tables users hand in (truth catalogues, star catalogues, labels)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from skytriage.errors import SkytriageInputError


def read_table(path: str | os.PathLike, required: set[str], what: str) -> pd.DataFrame:
    """Read an ECSV, Parquet or CSV table (by suffix) that must have ``required`` columns.

    Parameters
    ----------
    path : str or PathLike
    required : set of str
        Columns the table must have.
    what : str
        What the table is, for the error message (``"truth catalogue"``).

    Raises
    ------
    SkytriageInputError
        The file cannot be read, or a required column is missing.
    """
    path = Path(path)
    try:
        if path.suffix == ".ecsv":
            from astropy.table import Table

            table = Table.read(path, format="ascii.ecsv").to_pandas()
        elif path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise SkytriageInputError(path, f"cannot read the {what}: {err}") from err
    missing = required - set(table.columns)
    if missing:
        raise SkytriageInputError(path, f"{what} lacks {', '.join(sorted(missing))}")
    return table
