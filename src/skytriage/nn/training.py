"""One training loop for every model: steps of freshly drawn batches, Adam, best-on-validation."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]
log = logging.getLogger(__name__)


@dataclass
class TrainingHistory:
    """Losses seen while training (per evaluation interval)."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    best_step: int = 0

    def as_dict(self) -> dict:
        """JSON-ready copy, for model cards."""
        return {"step": self.step, "train_loss": self.train_loss,
                "validation_loss": self.validation_loss, "seconds": round(self.seconds, 1),
                "best_step": self.best_step}


def train_steps(model: nn.Module, next_batch: Callable[[np.random.Generator], Batch],
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                steps: int, rng: np.random.Generator, validation: list[Batch] | None = None,
                lr: float = 1e-3, eval_every: int = 50, progress: bool = False,
                device: torch.device | str = "cpu") -> TrainingHistory:
    """Train ``model`` in place for ``steps`` Adam steps with a cosine learning-rate decay.

    Parameters
    ----------
    model : torch.nn.Module
        The network; left holding the weights with the lowest validation loss.
    next_batch : callable
        ``next_batch(rng) -> (inputs, targets)``: draws (or simulates) one batch.
    loss_fn : callable
        ``loss_fn(model_output, targets) -> scalar tensor``.
    steps : int
        Optimiser steps.
    rng : numpy.random.Generator
        Passed to ``next_batch``.
    validation : list of (inputs, targets), optional
        Fixed batches scored every ``eval_every`` steps; without them the last weights win.
    lr : float
        Peak learning rate.
    eval_every : int
        Steps between validation passes (and history points).
    progress : bool
        Draw a progress bar.
    device : torch.device or str
        Where to train.

    Returns
    -------
    TrainingHistory
    """
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(steps, 1))
    history, best, best_loss, running = TrainingHistory(), None, float("inf"), []
    t0 = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("training", total=steps)
        for step in range(1, steps + 1):
            model.train()
            inputs, targets = (t.to(device) for t in next_batch(rng))
            loss = loss_fn(model(inputs), targets)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            running.append(float(loss.detach()))
            bar.advance(task)
            if step % eval_every and step != steps:
                continue
            val = _validation_loss(model, validation, loss_fn, device) if validation else np.nan
            history.step.append(step)
            history.train_loss.append(float(np.mean(running)))
            history.validation_loss.append(val)
            log.info("step %d/%d: training loss %.4f, validation loss %.4f", step, steps,
                     history.train_loss[-1], val)
            running.clear()
            score = val if validation else -step
            if score < best_loss:
                best_loss, best = score, copy.deepcopy(model.state_dict())
                history.best_step = step
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    history.seconds = time.perf_counter() - t0
    return history


@torch.inference_mode()
def _validation_loss(model: nn.Module, batches: list[Batch], loss_fn, device) -> float:
    model.eval()
    losses = [float(loss_fn(model(x.to(device)), y.to(device))) for x, y in batches]
    return float(np.mean(losses))
