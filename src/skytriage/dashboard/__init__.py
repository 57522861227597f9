"""dashboard: a web app to explore and label preview results, with a JSON API.

``skytriage dashboard RESULT_DIR`` serves it; ``skytriage.dashboard.create_app`` builds it
(a Dash app whose Flask server also carries the API under ``/api/``). Dash and Flask are
imported on first use only, so that the command line starts fast.
"""

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from skytriage.dashboard.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
