"""Threads, seeds and device for torch."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def configure_torch(threads: int | None = None) -> torch.device:
    """Use all cores (or ``threads``) for CPU work and return the device to run on.

    Parameters
    ----------
    threads : int, optional
        Intra-op threads; default: the cores this process may use.

    Returns
    -------
    torch.device
        ``cuda`` when a GPU is present, else ``cpu``.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, threads or cores or 1))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's and torch's generators; return a numpy generator for the caller's draws."""
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
