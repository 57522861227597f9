"""``create_app``: the Dash app and its JSON API on one Flask server."""

from __future__ import annotations

import os
from pathlib import Path

import dash
import flask
from werkzeug.exceptions import HTTPException

from skytriage.dashboard import callbacks, layout
from skytriage.dashboard.api import EXTENSION, api, json_error
from skytriage.dashboard.data import Dashboard, ResultData
from skytriage.io.labels import LabelStore, default_url

ASSETS = Path(__file__).parent / "assets"


def create_app(result_dir: str | os.PathLike, db_url: str | None = None) -> dash.Dash:
    """The dashboard over one preview result.

    Parameters
    ----------
    result_dir : path
        Folder written by ``skytriage preview`` (holds ``frames.parquet``).
    db_url : str, optional
        SQLAlchemy URL of the label database; by default
        ``sqlite:///<result_dir>/labels.sqlite``.

    Returns
    -------
    dash.Dash
        Its Flask server is ``app.server``; the API lives under ``/api/``.

    Raises
    ------
    SkytriageInputError
        When ``result_dir`` holds no readable ``frames.parquet``.
    """
    data = ResultData(Path(result_dir))
    board = Dashboard(data, LabelStore(db_url or default_url(result_dir)))
    server = flask.Flask(__name__)
    server.extensions[EXTENSION] = board
    server.register_blueprint(api)
    server.register_error_handler(HTTPException, json_error)
    app = dash.Dash(__name__, server=server, assets_folder=str(ASSETS),
                    title="skytriage dashboard", update_title=None)
    app.layout = lambda: layout.page(board)
    callbacks.register(app, board)
    return app
