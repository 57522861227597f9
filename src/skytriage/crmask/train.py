"""Training of the crmask networks on simulated exposures (or make-training pairs)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track

from skytriage.crmask.detect import median_inpaint, noise_model
from skytriage.crmask.model import SOFTEN, CrMaskNet, Inpainter, network_inputs, star_region
from skytriage.crmask.simulate import (
    BIT_COSMIC_RAY,
    BIT_SATURATED,
    draw_plan,
    simulate_exposure,
)
from skytriage.nn import TrainingHistory, seed_everything, train_steps

STAR_WEIGHT = 5.0
"""Loss weight of pixels on stars (5×5 median ≥ 10 × the background rms) against 1 on sky:
the hard pixels (hits on cores, cores that look like hits) are a small share of an image."""
STAR_NET_AIMED = 0.6
"""Share of cosmic rays aimed at stars in the star-region network's exposures (0.2 in
:func:`~skytriage.crmask.simulate.draw_plan`'s)."""
STAR_NET_CROWDING = 1.5
"""Those exposures hold this many times the stars of a default one."""
STAR_NET_JITTER = 8
"""Star-region crops are centred within this many px of a region pixel."""


@dataclass
class TrainingImage:
    """One exposure prepared for training; arrays float32 ``(ny, nx)`` unless stated.

    ``channels`` are the mask network's inputs ``(3, ny, nx)``, ``target`` the truth
    cosmic-ray mask (0/1), ``weight`` the loss weight (0 on saturated pixels,
    :data:`STAR_WEIGHT` on stars, 1 elsewhere),
    ``inpaint_channels`` the inpainter's inputs ``(3, ny, nx)`` for the truth mask,
    ``clean`` the truth ``asinh(z_clean / 3)`` and ``region`` the star region (bool, see
    :func:`~skytriage.crmask.model.star_region`).
    """

    channels: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    inpaint_channels: np.ndarray
    clean: np.ndarray
    region: np.ndarray


def prepare(image: np.ndarray, clean: np.ndarray, truth: np.ndarray,
            gain: float) -> TrainingImage:
    """Turn an exposure (ADU), its clean version and its truth flags into a training image."""
    saturated = (truth & BIT_SATURATED) > 0
    cosmic = (truth & BIT_COSMIC_RAY) > 0
    noise = noise_model(image, gain, ignore=saturated)
    filled = median_inpaint(image, cosmic | saturated)
    z_clean = (clean - noise.background) / noise.background_rms
    channels = network_inputs(image, noise)
    on_star = channels[1] > np.arcsinh(10.0 / SOFTEN)
    weight = np.where(on_star, STAR_WEIGHT, 1.0) * ~saturated
    return TrainingImage(
        channels=channels, target=cosmic.astype(np.float32), weight=weight.astype(np.float32),
        inpaint_channels=Inpainter.inputs(filled, cosmic, noise),
        clean=np.arcsinh(z_clean / SOFTEN).astype(np.float32),
        region=star_region(channels, saturated))


def simulated_images(seeds: Iterable[int], shape: tuple[int, int], *,
                     progress: bool = False, on_stars: bool = False,
                     **plan_options) -> list[TrainingImage]:
    """One simulated exposure per seed (see :func:`skytriage.crmask.simulate.draw_plan`);
    ``on_stars``: crowded, with most hits aimed at stars (:data:`STAR_NET_AIMED`,
    :data:`STAR_NET_CROWDING`)."""
    images = []
    for seed in track(list(seeds), description="simulating", disable=not progress,
                      transient=True):
        rng = np.random.default_rng(seed)
        plan = draw_plan(rng, shape, **plan_options)
        if on_stars:
            plan = replace(plan, aimed_fraction=STAR_NET_AIMED,
                           n_stars=int(plan.n_stars * STAR_NET_CROWDING))
        exposure = simulate_exposure(plan, rng)
        images.append(prepare(exposure.image, exposure.clean, exposure.mask,
                              exposure.plan.gain))
    return images


def _crop(images: list[TrainingImage], rng: np.random.Generator, size: int,
          fields: tuple[str, ...]) -> list[np.ndarray]:
    """The same random crop, flip and 90° rotation of ``fields`` of one random image."""
    image = images[rng.integers(len(images))]
    ny, nx = image.target.shape
    y, x = rng.integers(0, ny - size + 1), rng.integers(0, nx - size + 1)
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = []
    for name in fields:
        array = getattr(image, name)[..., y:y + size, x:x + size]
        array = np.rot90(array, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(array[..., ::-1] if flip else array))
    return out


def mask_batches(images: list[TrainingImage], size: int, batch: int):
    """``next_batch(rng)`` for the mask network: inputs, then target and weight stacked."""

    def next_batch(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        crops = [_crop(images, rng, size, ("channels", "target", "weight"))
                 for _ in range(batch)]
        x = torch.from_numpy(np.stack([c[0] for c in crops]))
        y = torch.from_numpy(np.stack([np.stack([c[1], c[2]]) for c in crops]))
        return x, y

    return next_batch


def star_batches(images: list[TrainingImage], size: int, batch: int):
    """``next_batch(rng)`` for the star-region network: crops near region pixels, the
    loss weight zero outside the region."""
    regions = [np.flatnonzero(image.region) for image in images]
    usable = [i for i, r in enumerate(regions) if r.size]

    def crop(rng: np.random.Generator) -> list[np.ndarray]:
        i = usable[rng.integers(len(usable))]
        image = images[i]
        ny, nx = image.target.shape
        cy, cx = divmod(int(regions[i][rng.integers(regions[i].size)]), nx)
        cy += int(rng.integers(-STAR_NET_JITTER, STAR_NET_JITTER + 1))
        cx += int(rng.integers(-STAR_NET_JITTER, STAR_NET_JITTER + 1))
        y = int(np.clip(cy - size // 2, 0, ny - size))
        x = int(np.clip(cx - size // 2, 0, nx - size))
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        out = []
        for array in (image.channels, image.target, image.weight * image.region):
            array = np.rot90(array[..., y:y + size, x:x + size], k, axes=(-2, -1))
            out.append(np.ascontiguousarray(array[..., ::-1] if flip else array))
        return out

    def next_batch(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        crops = [crop(rng) for _ in range(batch)]
        x = torch.from_numpy(np.stack([c[0] for c in crops]))
        y = torch.from_numpy(np.stack([np.stack([c[1], c[2]]) for c in crops]).astype(np.float32))
        return x, y

    return next_batch


def inpaint_batches(images: list[TrainingImage], size: int, batch: int):
    """``next_batch(rng)`` for the inpainter: inputs, then truth, mask and fill stacked
    (the loss needs the fill, and the training loop hands it only the targets)."""

    def next_batch(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        crops = [_crop(images, rng, size, ("inpaint_channels", "clean")) for _ in range(batch)]
        x = torch.from_numpy(np.stack([c[0] for c in crops]))
        y = torch.from_numpy(np.stack([np.stack([c[1], c[0][1], c[0][0]]) for c in crops]))
        return x, y

    return next_batch


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel BCE, weighted (saturated pixels carry no loss)."""
    return F.binary_cross_entropy_with_logits(logits[:, 0], target[:, 0], weight=target[:, 1])


def star_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel BCE averaged over the weighted (star-region) pixels only."""
    total = F.binary_cross_entropy_with_logits(logits[:, 0], target[:, 0], weight=target[:, 1],
                                               reduction="sum")
    return total / target[:, 1].sum().clamp(min=1.0)


def inpaint_loss(correction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of ``fill + correction`` against the truth, on masked pixels
    (``target`` planes: truth, mask, fill; all in ``asinh(z / 3)``)."""
    truth, mask, fill = target[:, 0], target[:, 1], target[:, 2]
    error = (fill + correction[:, 0] - truth).abs() * mask
    return error.sum() / mask.sum().clamp(min=1.0)


def train_mask(images: list[TrainingImage], validation: list[TrainingImage], *, steps: int,
               seed: int, size: int = 128, batch: int = 8, width: int = 8, depth: int = 2,
               lr: float = 2e-3, init: CrMaskNet | None = None, progress: bool = False
               ) -> tuple[CrMaskNet, TrainingHistory]:
    """Train a :class:`CrMaskNet` (from scratch, or on from ``init``); its threshold is
    then set to maximise validation F1."""
    rng = seed_everything(seed)
    model = init or CrMaskNet(width, depth)
    val = [mask_batches(validation, size, batch)(np.random.default_rng(seed + i))
           for i in range(4)]
    history = train_steps(model.net, mask_batches(images, size, batch), mask_loss,
                          steps=steps, rng=rng, validation=val, lr=lr, eval_every=100,
                          progress=progress)
    model.threshold = best_threshold(model, validation)
    return model, history


def best_threshold(model: CrMaskNet, validation: list[TrainingImage],
                   on_stars: bool = False) -> float:
    """The probability cut with the highest pixel F1 on the validation images (on their
    star regions only with ``on_stars``)."""
    probs, truth = [], []
    for image in validation:
        where = image.region if on_stars else None
        logits = model.logits(image.channels, where)
        keep = image.weight > 0  # F1 counts every unsaturated pixel alike
        if on_stars:
            keep &= image.region
        probs.append(1 / (1 + np.exp(-np.clip(logits[keep], -30, 30))))
        truth.append(image.target[keep] > 0)
    p, t = np.concatenate(probs), np.concatenate(truth)
    cuts = np.linspace(0.2, 0.8, 25)
    f1 = [2 * np.sum(t & (p > c)) / max(np.sum(t) + np.sum(p > c), 1) for c in cuts]
    return float(cuts[int(np.argmax(f1))])


def train_inpainter(images: list[TrainingImage], validation: list[TrainingImage], *,
                    steps: int, seed: int, size: int = 128, batch: int = 8, width: int = 8,
                    depth: int = 2, lr: float = 2e-3, init: Inpainter | None = None,
                    progress: bool = False) -> tuple[Inpainter, TrainingHistory]:
    """Train an :class:`Inpainter` on truth masks (from scratch, or on from ``init``)."""
    rng = seed_everything(seed)
    model = init or Inpainter(width, depth)
    val = [inpaint_batches(validation, size, batch)(np.random.default_rng(seed + i))
           for i in range(4)]
    history = train_steps(model.net, inpaint_batches(images, size, batch), inpaint_loss,
                          steps=steps, rng=rng, validation=val, lr=lr, eval_every=100,
                          progress=progress)
    return model, history


def train_and_save(out_dir, seeds: list[int], validation_seeds: list[int],
                   shape: tuple[int, int], *, steps: int, inpaint_steps: int, width: int,
                   seed: int, command: str, init: str | None = None, lr: float = 2e-3,
                   progress: bool = False) -> dict:
    """Simulate, train both networks, and write them with model cards into ``out_dir``.

    With ``init`` (a folder holding crmask_unet.pt and crmask_inpaint.pt), training goes
    on from those weights instead of starting afresh; the cards keep the earlier cards.

    Returns
    -------
    dict
        The two model cards, by file name.
    """
    from pathlib import Path

    from skytriage.crmask.pipeline import INPAINT_MODEL, MASK_MODEL
    from skytriage.nn.registry import read_card

    out_dir = Path(out_dir)
    images = simulated_images(seeds, shape, progress=progress)
    validation = simulated_images(validation_seeds, shape, progress=progress)
    data = {"simulator": "skytriage simulate crmask (draw_plan defaults)",
            "seeds": [seeds[0], seeds[-1]], "n_images": len(seeds),
            "validation_seeds": [validation_seeds[0], validation_seeds[-1]],
            "image_shape": list(shape), "crop": 128, "augmentations": "rot90 x4, flip"}
    start = {}
    if init is not None:
        start = {MASK_MODEL: CrMaskNet.load(Path(init) / MASK_MODEL),
                 INPAINT_MODEL: Inpainter.load(Path(init) / INPAINT_MODEL)}
        data["continued_from"] = {name: read_card(Path(init) / name) for name in start}
    masker, history = train_mask(images, validation, steps=steps, seed=seed, width=width,
                                 lr=lr, init=start.get(MASK_MODEL), progress=progress)
    inpainter, inpaint_history = train_inpainter(images, validation, steps=inpaint_steps,
                                                 seed=seed, width=width, lr=lr,
                                                 init=start.get(INPAINT_MODEL),
                                                 progress=progress)
    cards = {}
    for name, model, hist in ((MASK_MODEL, masker, history),
                              (INPAINT_MODEL, inpainter, inpaint_history)):
        card = {"name": name, "command": command, "seed": seed, "training": data,
                "parameters": sum(p.numel() for p in model.net.parameters()),
                "history": hist.as_dict()}
        model.save(out_dir / name, card)
        cards[name] = card
    return cards


def train_star_net(images: list[TrainingImage], validation: list[TrainingImage], *,
                   steps: int, seed: int, size: int = 64, batch: int = 16, width: int = 16,
                   depth: int = 3, lr: float = 2e-3, progress: bool = False
                   ) -> tuple[CrMaskNet, TrainingHistory]:
    """Train the star-region network on crops near star and galaxy pixels, the loss on
    those pixels only; its threshold then maximises validation F1 on them."""
    rng = seed_everything(seed)
    model = CrMaskNet(width, depth)
    val = [star_batches(validation, size, 2 * batch)(np.random.default_rng(seed + i))
           for i in range(4)]
    history = train_steps(model.net, star_batches(images, size, batch), star_loss,
                          steps=steps, rng=rng, validation=val, lr=lr,
                          eval_every=min(200, max(steps // 5, 1)),
                          progress=progress)
    model.threshold = best_threshold(model, validation, on_stars=True)
    return model, history


def train_star_net_and_save(path, seeds: list[int], validation_seeds: list[int],
                            shape: tuple[int, int], *, steps: int, width: int, depth: int,
                            seed: int, command: str, lr: float = 2e-3,
                            progress: bool = False) -> dict:
    """Simulate crowded exposures with hits aimed at stars, train the star-region network
    and write it with its model card to ``path`` (crmask_starnet.pt).

    Returns
    -------
    dict
        The model card.
    """
    images = simulated_images(seeds, shape, progress=progress, on_stars=True)
    validation = simulated_images(validation_seeds, shape, progress=progress, on_stars=True)
    model, history = train_star_net(images, validation, steps=steps, seed=seed, width=width,
                                    depth=depth, lr=lr, progress=progress)
    card = {"name": "crmask_starnet.pt", "command": command, "seed": seed,
            "training": {"simulator": "skytriage simulate crmask (draw_plan defaults), "
                                      f"{STAR_NET_CROWDING}x the stars, {STAR_NET_AIMED:.0%} "
                                      "of the hits aimed at stars",
                         "seeds": [seeds[0], seeds[-1]], "n_images": len(seeds),
                         "validation_seeds": [validation_seeds[0], validation_seeds[-1]],
                         "image_shape": list(shape), "crop": 64,
                         "loss": "BCE on star-region pixels only",
                         "augmentations": "rot90 x4, flip"},
            "threshold": model.threshold,
            "parameters": sum(p.numel() for p in model.net.parameters()),
            "history": history.as_dict()}
    model.save(path, card)
    return card
