"""transients: new and changed sources in reference/science image pairs.

``skytriage.transients.run(ref, sci)`` aligns the pair, subtracts it (ZOGY), finds
candidates in ``S_corr``, scores them with a CNN and measures them; the returned
:class:`TransientResult` has ``.transients`` (the catalogue) and ``.write(out_dir)``.
"""

from skytriage._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "model": ("TransientScorer",),
    "pipeline": ("TransientResult", "grid_detect", "run"),
    "simulate": ("PairConfig", "simulate_pair"),
})
