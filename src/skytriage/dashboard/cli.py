"""``skytriage dashboard RESULT_DIR``: serve the dashboard over a preview result."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from skytriage.clikit import fail_usage, state

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8050


def dashboard_command(
    ctx: typer.Context,
    result_dir: Annotated[Path, typer.Argument(help="Folder written by 'skytriage preview' "
                                                    "(holds frames.parquet).")],
    db: Annotated[str | None, typer.Option(
        "--db", help="SQLAlchemy URL of the label database, e.g. postgresql+psycopg://host/db "
                     "[default: sqlite:///RESULT_DIR/labels.sqlite].")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on; the default serves this "
                                           "machine only.")] = DEFAULT_HOST,
) -> None:
    """Web dashboard to explore and label a preview result (JSON API under /api/)."""
    import sqlalchemy.exc

    from skytriage.dashboard.app import create_app

    if not (result_dir / "frames.parquet").is_file():
        fail_usage(f"{result_dir}: not a preview result (no frames.parquet)")
    try:
        app = create_app(result_dir, db)
    except sqlalchemy.exc.SQLAlchemyError as err:
        fail_usage(f"--db {db}: cannot open the label database: "
                   f"{' '.join(str(err.args[0] if err.args else err).split())}")
    if state(ctx).verbose < 1:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    typer.echo(f"skytriage dashboard: http://{host}:{port}/ (Ctrl+C stops)", err=True)
    app.run(host=host, port=port, debug=False)
