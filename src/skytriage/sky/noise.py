"""Photon noise, and deterministic multi-threaded noise generation over row blocks.

Large frames are cut into blocks of whole rows whose boundaries depend only on the array
shape. Each block gets its own generator spawned from the caller's, and blocks run on a
thread pool (numpy's samplers release the GIL), so results are identical for any number
of threads and the same seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Pixels per block of rows (about 256 k: 1 MB of float32).
BLOCK_PIXELS = 1 << 18

#: Default mean above which Poisson counts are drawn from a Gaussian (see :func:`poisson`).
GAUSSIAN_ABOVE = 1000.0


def row_blocks(n_rows: int, row_length: int) -> list[slice]:
    """Split ``n_rows`` rows of ``row_length`` pixels into slices of ~:data:`BLOCK_PIXELS`."""
    per = max(1, BLOCK_PIXELS // max(row_length, 1))
    return [slice(start, min(start + per, n_rows)) for start in range(0, n_rows, per)]


def spawn(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived deterministically from ``rng``."""
    entropy = rng.integers(0, 2**63, size=4)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(n)]


def map_blocks(func: Callable[[slice, np.random.Generator], None], blocks: list[slice],
               rng: np.random.Generator) -> None:
    """Call ``func(block, generator)`` for every block, on up to ``os.cpu_count()`` threads."""
    gens = spawn(rng, len(blocks))
    workers = min(len(blocks), os.cpu_count() or 1)
    if workers <= 1:
        for block, gen in zip(blocks, gens, strict=True):
            func(block, gen)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(func, blocks, gens))


def poisson_block(lam: np.ndarray, rng: np.random.Generator,
                  gaussian_above: float = GAUSSIAN_ABOVE) -> np.ndarray:
    """Poisson counts for means ``lam`` (e-), float32, in the calling thread.

    Means above ``gaussian_above`` use ``round(lam + sqrt(lam) * N(0, 1))``: at
    ``lam > 1000`` the skewness left out is < 0.03 sigma. Negative means count as 0.
    """
    lam = np.maximum(lam, 0, dtype=np.float32)
    high = lam > gaussian_above
    if not high.any():
        return rng.poisson(lam).astype(np.float32)
    counts = rng.poisson(np.where(high, 0, lam)).astype(np.float32)
    big = lam[high]
    counts[high] = np.rint(big + np.sqrt(big) * rng.standard_normal(big.size, np.float32))
    return counts


def poisson(lam: np.ndarray, rng: np.random.Generator, *,
            gaussian_above: float = GAUSSIAN_ABOVE) -> np.ndarray:
    """Poisson counts for an array of means, multi-threaded over row blocks.

    Parameters
    ----------
    lam : numpy.ndarray
        Expected counts (e-), any shape with at least one axis.
    rng : numpy.random.Generator
        Source of randomness; the result depends only on it and ``lam``.
    gaussian_above : float
        Means above this use the Gaussian approximation of :func:`poisson_block`.

    Returns
    -------
    numpy.ndarray
        float32 counts, shape of ``lam``.
    """
    lam = np.asarray(lam)
    flat = lam.reshape(-1, lam.shape[-1]) if lam.ndim > 1 else lam.reshape(1, -1)
    out = np.empty(flat.shape, dtype=np.float32)

    def work(block: slice, gen: np.random.Generator) -> None:
        out[block] = poisson_block(flat[block], gen, gaussian_above)

    map_blocks(work, row_blocks(*flat.shape), rng)
    return out.reshape(lam.shape)
