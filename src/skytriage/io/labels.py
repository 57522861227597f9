"""Human frame labels in a real database, shared by the dashboard and ``preview train``.

One table, ``labels(id, path, frame, label, user, created_at)``, one row per key press:
nothing is ever overwritten, so the history of who said what stays; :meth:`LabelStore.latest`
gives the newest label of each frame. The store speaks SQLAlchemy, so any database URL
works; the default is a SQLite file beside the preview result, in WAL mode with a busy
timeout so that several labellers (processes or threads) can write at once.

``path`` and ``frame`` are stored exactly as in ``frames.parquet`` (the path as the user
gave it to preview), so labels join on the result's rows without path games.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from skytriage.io.write import write_csv

LABELS = ("normal", "satellite", "slew", "tracking", "cloud", "obstruction", "defocus",
          "background", "camera")
COLUMNS = ["id", "path", "frame", "label", "user", "created_at"]
SQLITE_BUSY_TIMEOUT_MS = 30_000


class _Base(DeclarativeBase):
    pass


class LabelRow(_Base):
    """One label given by one person to one frame at one time (UTC)."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(sa.Text, index=True)
    frame: Mapped[int] = mapped_column(sa.Integer)
    label: Mapped[str] = mapped_column(sa.Text)
    user: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


def default_url(result_dir: str | os.PathLike) -> str:
    """The default database of a preview result: ``sqlite:///<abs result_dir>/labels.sqlite``."""
    return f"sqlite:///{Path(result_dir).resolve() / 'labels.sqlite'}"


def check_label(path: object, frame: object, label: object, user: object) -> None:
    """Raise ValueError unless the four fields make a valid label.

    Parameters
    ----------
    path : str
        The frame's file as in ``frames.parquet``; not empty.
    frame : int
        0-based index of the frame in its dataset (a bool is not an int here).
    label : str
        One of :data:`LABELS`.
    user : str
        Who gave the label; not empty.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError("path must be a non-empty string")
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise ValueError(f"frame must be an integer >= 0, not {frame!r}")
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}; not {label!r}")
    if not isinstance(user, str) or not user.strip():
        raise ValueError("user must be a non-empty string")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Busy timeout first (so that switching to WAL waits for other writers), then WAL."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files get WAL mode and a busy timeout on every connection."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class LabelStore:
    """Frame labels in the database at ``url`` (created with its table when missing).

    Parameters
    ----------
    url : str
        SQLAlchemy database URL: ``sqlite:///path/labels.sqlite`` (see :func:`default_url`)
        or ``postgresql+psycopg://user@host/db``.

    Raises
    ------
    sqlalchemy.exc.ArgumentError
        When ``url`` is not a database URL.
    sqlalchemy.exc.OperationalError
        When the database cannot be opened or created.
    """

    default_url = staticmethod(default_url)

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
        self._create_table()

    def _create_table(self) -> None:
        """Create the table; another process creating it at the same moment is fine."""
        try:
            _Base.metadata.create_all(self.engine)
        except (OperationalError, ProgrammingError):
            if not sa.inspect(self.engine).has_table(LabelRow.__tablename__):
                raise

    def add(self, path: str, frame: int, label: str, user: str) -> int:
        """Store one label now (UTC) and return its id.

        Raises
        ------
        ValueError
            When a field is invalid (see :func:`check_label`); nothing is stored.
        """
        check_label(path, frame, label, user)
        row = {"path": path, "frame": frame, "label": label, "user": user,
               "created_at": datetime.now(UTC)}
        with self.engine.begin() as conn:
            result = conn.execute(sa.insert(LabelRow).values(**row))
            return int(result.inserted_primary_key[0])

    def all(self) -> pd.DataFrame:
        """Every label ever given, oldest first.

        Returns
        -------
        DataFrame
            Columns ``id, path, frame, label, user, created_at`` (tz-aware UTC timestamps).
        """
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*(getattr(LabelRow, c) for c in COLUMNS))
                                .order_by(LabelRow.id)).all()
        table = pd.DataFrame(rows, columns=COLUMNS)
        table["id"] = table["id"].astype("int64")
        table["frame"] = table["frame"].astype("int64")
        table["created_at"] = pd.to_datetime(table["created_at"], utc=True)
        return table

    def latest(self) -> pd.DataFrame:
        """The newest label of every labelled ``(path, frame)``, same columns as :meth:`all`."""
        table = self.all()
        return table.drop_duplicates(["path", "frame"], keep="last").reset_index(drop=True)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write every label to a CSV file, atomically; return its path."""
        table = self.all()
        table["created_at"] = table["created_at"].map(lambda t: t.isoformat())
        return write_csv(path, table)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
