"""FITS in and out, datasets of frames, units, and atomic writers for every output format."""

from skytriage.io.bzero import RawLayout, raw_layout, read_raw_image
from skytriage.io.datasets import FRAME_SUFFIXES, Dataset, find_datasets, is_frame_name
from skytriage.io.fits import (
    Frame,
    astropy_errors,
    read_cube,
    read_frame,
    read_header,
    read_ramp,
    scan_frame,
)
from skytriage.io.header import (
    FrameMeta,
    adu_to_electrons,
    date_obs_from_header,
    electrons_to_adu,
    parse_date_obs,
    read_meta,
)
from skytriage.io.labels import LabelStore
from skytriage.io.summary import RunSummary
from skytriage.io.write import (
    atomic_path,
    to_jsonable,
    write_csv,
    write_ecsv,
    write_fits,
    write_json,
    write_parquet,
)

__all__ = [
    "FRAME_SUFFIXES",
    "Dataset",
    "Frame",
    "FrameMeta",
    "LabelStore",
    "RawLayout",
    "RunSummary",
    "adu_to_electrons",
    "astropy_errors",
    "atomic_path",
    "date_obs_from_header",
    "electrons_to_adu",
    "find_datasets",
    "is_frame_name",
    "parse_date_obs",
    "raw_layout",
    "read_cube",
    "read_frame",
    "read_header",
    "read_meta",
    "read_ramp",
    "read_raw_image",
    "scan_frame",
    "to_jsonable",
    "write_csv",
    "write_ecsv",
    "write_fits",
    "write_json",
    "write_parquet",
]
