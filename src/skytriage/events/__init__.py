"""events: meteors and other fast transients in per-pixel time series (Mini-EUSO-like cubes).

``skytriage.events.run(cube)`` returns an :class:`EventsResult` whose ``.write(out_dir)``
writes ``event_map.fits`` (per-pixel meteor score, 2-D), ``events.ecsv`` and
``report.html``.
"""

from skytriage._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "detect": ("conventional_trigger",),
    "evaluate": ("Evaluation", "leave_one_session_out"),
    "model": ("METHODS", "EventsModel", "PixelClassifier"),
    "pipeline": ("EventsResult", "run", "run_cube"),
    "simulate": ("Session", "simulate_session"),
})
