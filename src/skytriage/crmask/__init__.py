"""crmask: cosmic-ray masks and inpainting for single exposures.

``run(image, ...)`` masks one exposure (the shipped U-Net or L.A.Cosmic) and returns a
:class:`CrMaskResult` with ``mask`` (uint16 flags), ``clean`` and ``.write(out_dir)``;
``run_file(path, ...)`` reads the FITS file first.
"""

from skytriage._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "pipeline": ("CrMaskResult", "run", "run_file")})
