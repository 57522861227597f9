"""ramp: cosmic rays, telegraph noise and snowballs in up-the-ramp (H2RG) cubes.

``skytriage.ramp.run(path_or_array)`` returns a :class:`RampResult` whose
``.write(out_dir)`` writes ``mask.fits``, ``slope.fits``, ``detections.json`` and
``report.html``; :func:`simulate_ramp` makes labelled ramps and :func:`score` judges a mask.
"""

from skytriage._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "detect": ("RuleSettings",),
    "evaluate": ("mean_scores", "score"),
    "pipeline": ("RampResult", "run"),
    "simulate": ("RampSimConfig", "SimulatedRamp", "simulate_ramp"),
})
