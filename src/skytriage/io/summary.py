"""``summary.json``: what a command read, how it was set, what it made and what failed."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from skytriage.errors import SkytriageInputError

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2

_VERSIONED_PACKAGES = ("skytriage", "numpy", "scipy", "astropy", "sep", "photutils",
                       "scikit-learn", "dask", "distributed", "torch")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour shapes the results."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


class RunSummary:
    """Collects what one command did and writes it as ``summary.json``.

    Parameters
    ----------
    command : str
        The task name, e.g. ``"preview"``.
    inputs : sequence of str
        Inputs as the user gave them.
    parameters : dict
        Options in force (JSON-serialisable values).
    """

    def __init__(self, command: str, inputs: Sequence[str | os.PathLike], parameters: dict):
        self.command = command
        self.inputs = [os.fspath(p) for p in inputs]
        self.parameters = dict(parameters)
        self.argv = list(sys.argv)
        self.started = datetime.now(UTC)
        self._t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.outputs: list[str] = []
        self.failed: list[dict[str, str]] = []
        self.extra: dict[str, Any] = {}

    def fail(self, path: str | os.PathLike, error: BaseException | str) -> None:
        """Record an input that could not be used; the error text is kept on one line."""
        if isinstance(error, SkytriageInputError):
            cause = error.cause
        else:
            cause = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.failed.append({"path": os.fspath(path), "error": " ".join(cause.split())})

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        self.counts[name] = self.counts.get(name, 0) + int(n)

    def output(self, path: str | os.PathLike) -> None:
        """Record a file the command wrote."""
        self.outputs.append(os.fspath(path))

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the wall-clock seconds spent in the ``with`` block to ``timings[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    @property
    def n_done(self) -> int:
        """Inputs that were processed (the ``done`` counter)."""
        return self.counts.get("done", 0)

    @property
    def exit_code(self) -> int:
        """0 all done; 1 some inputs failed, the rest done; 2 no usable input."""
        if not self.failed:
            return EXIT_OK
        return EXIT_SOME_FAILED if self.n_done > 0 else EXIT_USAGE

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready data."""
        timings = dict(self.timings)
        timings["total_s"] = time.perf_counter() - self._t0
        return {
            "command": self.command,
            "argv": self.argv,
            "started": self.started.isoformat(timespec="seconds"),
            "inputs": self.inputs,
            "parameters": self.parameters,
            "versions": package_versions(),
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "counts": self.counts,
            "outputs": self.outputs,
            "failed": self.failed,
            "exit_code": self.exit_code,
            **self.extra,
        }

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write ``out_dir/summary.json`` atomically and return its path."""
        from skytriage.io.write import write_json

        path = Path(out_dir) / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.as_dict())
        return path
