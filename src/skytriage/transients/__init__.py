"""transients: new and changed sources in reference/science image pairs.

``skytriage.transients.run(ref, sci)`` aligns the pair, subtracts it (ZOGY), finds
candidates in ``S_corr``, scores them with a CNN and measures them; the returned
:class:`TransientResult` has ``.transients`` (the catalogue) and ``.write(out_dir)``.
"""

from __future__ import annotations

from skytriage.transients.model import TransientScorer
from skytriage.transients.pipeline import TransientResult, grid_detect, run
from skytriage.transients.simulate import PairConfig, simulate_pair

__all__ = ["PairConfig", "TransientResult", "TransientScorer", "grid_detect", "run",
           "simulate_pair"]
