"""The learned part of ``ramp``: a small 3-D U-Net over (groups, y, x) patches, fused with
the rules.

The network does not scan the whole array (that would cost more than the rules and
stcal together on a CPU). It looks where the rules are unsure: pixels with level changes
of both signs at a lower significance than the telegraph rule demands
(:data:`CANDIDATE_SIGMA`). For each such pixel it sees an ``8 x 8`` patch around it over
every difference of the integration, two channels per voxel:

- ``z``: the difference's significance under the per-pixel noise model;
- ``level``: the windowed level change's significance (the telegraph statistic);

both clipped to +-:data:`FEATURE_CLIP` and scaled by 1/4. It outputs, per voxel, logits
of background, cosmic ray, telegraph noise, snowball; a pixel's logits are their soft
maximum over the groups (``logsumexp - log D``: a pixel is telegraph noise if some
groups show a transition), trained against the pixel's class.

Fusion (:meth:`RampNet.fuse`): a candidate becomes telegraph noise when
``p_rtn >= rtn_accept``; a rules telegraph pixel is dropped when ``p_rtn < rtn_reject``.
Telegraph pixels lose any cosmic-ray flag (their up-steps are not cosmic rays).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from skytriage.nn import UNet, load_checkpoint, save_checkpoint
from skytriage.ramp.detect import Classified

CLASSES = ("background", "cr", "rtn", "snowball")
PATCH = 8
FEATURE_CLIP = 20.0
FEATURE_SCALE = 0.25
#: Both signs of level change beyond this (sigma) make a pixel a candidate.
CANDIDATE_SIGMA = 3.5
SHIPPED_NAME = "ramp_net.pt"


def candidate_pixels(z: np.ndarray, level: np.ndarray, valid: np.ndarray,
                     limit: float = CANDIDATE_SIGMA) -> tuple[np.ndarray, ...]:
    """Pixels with level changes of both signs beyond ``limit``: ``(int, y, x)`` arrays.

    ``z``, ``level`` and ``valid`` are ``(ints, n_diffs, rows, nx)``; the integration is
    the one with the strongest level change of the pixel.
    """
    spikes = np.where(valid, z, 0)
    up = ((level > limit) | (spikes > limit)).any(axis=1)
    down = ((level < -limit) | (spikes < -limit)).any(axis=1)
    both = up & down  # (ints, rows, nx)
    strength = np.abs(level).max(axis=1)
    strength[~both] = -1
    best = strength.argmax(axis=0)
    ys, xs = np.nonzero(both.any(axis=0))
    return best[ys, xs], ys, xs


def patches(z: np.ndarray, level: np.ndarray, integration: np.ndarray, ys: np.ndarray,
            xs: np.ndarray) -> np.ndarray:
    """Network inputs for the listed pixels: float32 ``(n, 2, D, PATCH, PATCH)``.

    ``D`` is the number of differences rounded up to even (the U-Net pools time by 2);
    the pixel sits at ``(PATCH // 2, PATCH // 2)``; outside the band is zero.
    """
    ints, n_diffs, rows, nx = z.shape
    depth = n_diffs + n_diffs % 2
    half = PATCH // 2
    stacked = np.stack([z, level], axis=2)  # (ints, D, 2, rows, nx)
    padded = np.zeros((ints, depth, 2, rows + PATCH, nx + PATCH), np.float32)
    padded[:, :n_diffs, :, half:half + rows, half:half + nx] = stacked
    out = np.empty((len(ys), 2, depth, PATCH, PATCH), np.float32)
    for n, (i, y, x) in enumerate(zip(integration, ys, xs, strict=True)):
        out[n] = padded[i, :, :, y:y + PATCH, x:x + PATCH].transpose(1, 0, 2, 3)
    np.clip(out, -FEATURE_CLIP, FEATURE_CLIP, out=out)
    return out * np.float32(FEATURE_SCALE)


@dataclass
class PatchCollector:
    """Candidates and their patches gathered band by band during a run."""

    inputs: list[np.ndarray] = field(default_factory=list)
    ys: list[np.ndarray] = field(default_factory=list)
    xs: list[np.ndarray] = field(default_factory=list)

    def add(self, z: np.ndarray, level: np.ndarray, valid: np.ndarray, y0: int) -> None:
        """Collect the candidates of one band (``y0``: its first row)."""
        integration, ys, xs = candidate_pixels(z, level, valid)
        if ys.size:
            self.inputs.append(patches(z, level, integration, ys, xs))
            self.ys.append(ys + y0)
            self.xs.append(xs)


@dataclass
class Fused:
    """The rules' findings after fusion with the network."""

    classified: Classified
    rtn: np.ndarray
    rtn_rows: list[dict]
    probabilities: np.ndarray


class RampNet:
    """A 3-D U-Net that names the pixel at the centre of a (groups, y, x) patch.

    Parameters
    ----------
    width : int
        Channels of the first U-Net level (the second has twice as many).
    rtn_accept, rtn_reject : float
        Fusion thresholds on the telegraph-noise probability.
    """

    def __init__(self, width: int = 4, rtn_accept: float = 0.7, rtn_reject: float = 0.0):
        self.width = width
        self.rtn_accept = rtn_accept
        self.rtn_reject = rtn_reject
        self.network = UNet(2, len(CLASSES), width=width, depth=1, dims=3)
        self.card: dict = {}

    def n_parameters(self) -> int:
        """Trainable weights."""
        return sum(p.numel() for p in self.network.parameters())

    def new_collector(self) -> PatchCollector:
        """An empty collector for :func:`skytriage.ramp.pipeline.run`."""
        return PatchCollector()

    @torch.inference_mode()
    def predict_proba(self, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
        """Class probabilities of the patch centres: float32 ``(n, 4)``."""
        self.network.eval()
        out = np.zeros((len(inputs), len(CLASSES)), np.float32)
        c = PATCH // 2
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small batches: threads only wait on each other
        try:
            for start in range(0, len(inputs), batch):
                x = torch.from_numpy(inputs[start:start + batch])
                logits = pixel_logits(self.network, x)
                out[start:start + batch] = torch.softmax(logits[:, :, c, c], dim=1).numpy()
        finally:
            torch.set_num_threads(threads)
        return out

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Most likely class index of every patch centre, int ``(n,)``."""
        return self.predict_proba(inputs).argmax(axis=1)

    def fuse(self, collected: PatchCollector, found: Classified, rtn_rows: list[dict],
             shape: tuple[int, int]) -> Fused:
        """Combine the network's verdicts on the candidates with the rules.

        Parameters
        ----------
        collected : PatchCollector
        found : Classified
            Cosmic rays and snowballs of the rules.
        rtn_rows : list of dict
            Telegraph fits of the rules (absolute ``y``, ``x``).
        shape : (int, int)

        Returns
        -------
        Fused
        """
        probabilities = np.zeros((len(CLASSES), *shape), np.float32)
        rtn = np.zeros(shape, bool)
        for row in rtn_rows:
            rtn[row["y"], row["x"]] = True
        if collected.inputs:
            ys, xs = np.concatenate(collected.ys), np.concatenate(collected.xs)
            prob = self.predict_proba(np.concatenate(collected.inputs))
            probabilities[:, ys, xs] = prob.T
            p_rtn = prob[:, CLASSES.index("rtn")]
            added = np.zeros(shape, bool)
            added[ys[p_rtn >= self.rtn_accept], xs[p_rtn >= self.rtn_accept]] = True
            # the network was trained with snowball pixels as snowballs only
            rtn |= added & ~found.snowball
            rejected = np.zeros(shape, bool)
            rejected[ys[p_rtn < self.rtn_reject], xs[p_rtn < self.rtn_reject]] = True
            rtn &= ~rejected
        kept = [r for r in rtn_rows if rtn[r["y"], r["x"]]]
        known = {(r["y"], r["x"]) for r in kept}
        for y, x in zip(*np.nonzero(rtn), strict=True):
            if (y, x) not in known:
                kept.append({"y": int(y), "x": int(x), "amplitude": None, "transitions": None,
                             "duty_cycle": None, "snr": None, "alternation": None,
                             "amplitude_ratio": None, "first_group": None,
                             "transition_groups": None, "fit": "network",
                             "p_rtn": float(probabilities[2, y, x])})
        found.cr &= ~rtn
        return Fused(found, rtn, kept, probabilities)

    def fit(self, inputs: list[np.ndarray], labels: list[np.ndarray], *, steps: int = 300,
            batch: int = 32, seed: int = 0, lr: float = 3e-3,
            validation: tuple | None = None, progress: bool = False):
        """Train on patches (one array per ramp length) and their centre-pixel labels.

        Parameters
        ----------
        inputs : list of numpy.ndarray
            ``(n, 2, D, PATCH, PATCH)`` per group of equal ``D``.
        labels : list of numpy.ndarray
            int ``(n, PATCH, PATCH)``: class of every patch pixel (-1: not scored).
        steps, batch, seed : int
        lr : float
            Peak learning rate (cosine decay).
        validation : (inputs, labels), optional
            Held-out patches (one ``D``) for picking the best weights.
        progress : bool

        Returns
        -------
        skytriage.nn.TrainingHistory
        """
        from skytriage.nn import seed_everything, train_steps

        rng = seed_everything(seed)
        counts = np.bincount(np.concatenate([lab.ravel() for lab in labels]) + 1,
                             minlength=len(CLASSES) + 1)[1:]
        # inverse frequency: telegraph pixels are ~1 in 64 of their patches' pixels
        weights = torch.tensor(counts.sum() / np.maximum(counts, 1), dtype=torch.float32)
        loss = torch.nn.CrossEntropyLoss(weight=weights / weights.mean(), ignore_index=-1)

        def loss_fn(logits, target):
            return loss(_pool_groups(logits), target)

        def next_batch(gen: np.random.Generator):
            g = int(gen.integers(len(inputs)))
            pick = gen.integers(0, len(inputs[g]), batch)
            x, y = inputs[g][pick].copy(), labels[g][pick].copy()
            if gen.random() < 0.5:
                x, y = x[..., ::-1].copy(), y[..., ::-1].copy()
            if gen.random() < 0.5:
                x, y = x[..., ::-1, :].copy(), y[..., ::-1, :].copy()
            return _as_batch(x, y)

        checks = None
        if validation is not None:
            vx, vy = validation
            checks = [_as_batch(vx[s:s + 128], vy[s:s + 128]) for s in range(0, len(vx), 128)]
        return train_steps(self.network, next_batch, loss_fn, steps=steps, rng=rng,
                           validation=checks, lr=lr, eval_every=max(steps // 6, 1),
                           progress=progress)

    def save(self, path: str | os.PathLike, card: dict) -> Path:
        """Write the checkpoint and its model card (JSON beside it)."""
        config = {"width": self.width, "rtn_accept": self.rtn_accept,
                  "rtn_reject": self.rtn_reject, "classes": list(CLASSES), "patch": PATCH,
                  "feature_clip": FEATURE_CLIP, "feature_scale": FEATURE_SCALE,
                  "candidate_sigma": CANDIDATE_SIGMA}
        self.card = card
        return save_checkpoint(path, self.network, config, card)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RampNet:
        """Read a checkpoint written by :meth:`save`."""
        from skytriage.nn.registry import read_card

        config, state = load_checkpoint(path)
        net = cls(width=config["width"], rtn_accept=config["rtn_accept"],
                  rtn_reject=config["rtn_reject"])
        net.network.load_state_dict(state)
        net.network.eval()
        net.card = read_card(path)
        return net


def shipped_model() -> RampNet | None:
    """The network shipped in ``skytriage/weights/ramp_net.pt``; None when absent."""
    from skytriage.nn import shipped_weights

    path = shipped_weights(SHIPPED_NAME)
    return RampNet.load(path) if path.exists() else None


def pixel_logits(network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel logits ``(N, 4, PATCH, PATCH)`` of patches ``(N, 2, D, PATCH, PATCH)``."""
    return _pool_groups(network(x))


def _pool_groups(logits: torch.Tensor) -> torch.Tensor:
    """Soft maximum of voxel logits over the groups (axis 2)."""
    return torch.logsumexp(logits, dim=2) - float(np.log(logits.shape[2]))


def _as_batch(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and per-pixel targets as tensors."""
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
