"""Cosmic-ray maskers to compare against, called the way their documentation asks.

Each adapter takes an image in ADU with its gain (e-/ADU), read noise (e-) and saturation
(ADU) and returns ``(mask, score)``: the tool's own binary mask and, where the tool has
one, a per-pixel score (probability) for ROC curves, else None. Peers are optional
packages (``pip install skytriage[peers]``); a missing one raises ImportError.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

Masker = Callable[..., tuple[np.ndarray, np.ndarray | None]]


STAR_FLOOR = 0.2
"""``--star-floor`` of the ``skytriage-unet-stars`` and ``-starnet-floor`` maskers."""


def skytriage(description: str, **options) -> Masker:
    """A masker that runs :func:`skytriage.crmask.pipeline.run` with ``options`` (masked
    median fill); its score is the network's probability (None with L.A.Cosmic)."""

    def masker(image, *, gain, readnoise, saturation):
        from skytriage.crmask.pipeline import run

        result = run(image, gain=gain, readnoise=readnoise, saturation=saturation,
                     inpaint="median", **options)
        return result.cosmic_rays, result.probability

    masker.__doc__ = description
    return masker


def astroscrappy_default(image, *, gain, readnoise, saturation):
    """astroscrappy 1.x ``detect_cosmics`` with its defaults and the header's gain, read
    noise and saturation (``satlevel`` is in electrons)."""
    import astroscrappy

    level = np.inf if saturation is None else saturation * gain
    mask, _ = astroscrappy.detect_cosmics(np.asarray(image, np.float32), gain=gain,
                                          readnoise=readnoise or 6.5, satlevel=level)
    return mask, None


@lru_cache(maxsize=2)
def _deepcr(model: str):
    from deepCR import deepCR

    return deepCR(mask=model, device="CPU")


def deepcr(model: str = "ACS-WFC") -> Masker:
    """deepCR (Zhang & Bloom 2020) with a shipped mask model, on the image in electrons."""

    def masker(image, *, gain, readnoise, saturation):
        import torch

        with torch.inference_mode():
            prob = _deepcr(model).clean(np.asarray(image, np.float32) * gain, threshold=0.5,
                                        inpaint=False, binary=False)
        return prob > 0.5, prob.astype(np.float32)

    masker.__doc__ = f"deepCR, {model} model"
    return masker


@lru_cache(maxsize=2)
def _cosmic_conn(model: str):
    from cosmic_conn import init_model

    return init_model(model)


def cosmic_conn(model: str = "ground_imaging") -> Masker:
    """Cosmic-CoNN (Xu et al. 2023) with a shipped model, on the image in electrons."""

    def masker(image, *, gain, readnoise, saturation):
        import torch

        with torch.inference_mode():
            prob = _cosmic_conn(model).detect_cr(np.asarray(image, np.float32) * gain)
        return prob > 0.5, np.asarray(prob, np.float32)

    masker.__doc__ = f"Cosmic-CoNN, {model} model"
    return masker


MASKERS: dict[str, Callable[[], Masker]] = {
    "skytriage-unet": lambda: skytriage("skytriage's default: the U-Net and the "
                                        "point-source test", method="unet"),
    "skytriage-unet-raw": lambda: skytriage("skytriage's U-Net alone (--no-point-source-test)",
                                            method="unet", point_source_test=False),
    "skytriage-unet-starnet": lambda: skytriage("skytriage with --star-net", method="unet",
                                                star_net=True),
    "skytriage-unet-starnet-floor": lambda: skytriage(
        "skytriage with --star-net --star-floor 0.2", method="unet", star_net=True,
        star_floor=STAR_FLOOR),
    "skytriage-unet-stars": lambda: skytriage("skytriage with --star-floor 0.2",
                                              method="unet", star_floor=STAR_FLOOR),
    "skytriage-unet-starmodel": lambda: skytriage("skytriage with --star-model",
                                                  method="unet", star_model=True),
    "skytriage-lacosmic": lambda: skytriage("skytriage's L.A.Cosmic: astroscrappy with "
                                            "skytriage's noise model", method="lacosmic"),
    "astroscrappy": lambda: astroscrappy_default,
    "deepcr-acs-wfc": lambda: deepcr("ACS-WFC"),
    "deepcr-decam": lambda: deepcr("decam"),
    "cosmic-conn-ground": lambda: cosmic_conn("ground_imaging"),
    "cosmic-conn-hst": lambda: cosmic_conn("HST_ACS_WFC"),
}
"""Names accepted by ``crmask evaluate --methods`` and the benchmark."""
