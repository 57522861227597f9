"""sky: the physics every simulator shares.

PSFs (:mod:`~skytriage.sky.psf`), star fields and stamp rendering
(:mod:`~skytriage.sky.stars`), sky light and clouds (:mod:`~skytriage.sky.background`),
photon noise (:mod:`~skytriage.sky.noise`) and detectors (:mod:`~skytriage.sky.camera`).
Images are float32 in e- until a camera digitises them; coordinates are 0-based with
x = column and y = row; everything random comes from a ``numpy.random.Generator`` or a seed,
so the same seed gives the same arrays.
"""

from skytriage.sky.background import CloudScreen, glow, sky_background, vignetting
from skytriage.sky.camera import CCD, H2RG, SCMOS
from skytriage.sky.noise import poisson
from skytriage.sky.psf import PSF, Donut, Gaussian, Moffat, Streak, Trailed
from skytriage.sky.stars import motion_blur, power_law_fluxes, render_stars, star_field

__all__ = [
    "CCD",
    "H2RG",
    "PSF",
    "SCMOS",
    "CloudScreen",
    "Donut",
    "Gaussian",
    "Moffat",
    "Streak",
    "Trailed",
    "glow",
    "motion_blur",
    "poisson",
    "power_law_fluxes",
    "render_stars",
    "sky_background",
    "star_field",
    "vignetting",
]
