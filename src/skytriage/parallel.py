"""Map a function over many inputs: in this process, on local Dask workers, or on a cluster.

The same call serves a laptop and an observatory cluster. ``workers=1`` without a
scheduler runs in this process (no start-up cost, easy to debug); more workers start a
``distributed.LocalCluster`` of processes; ``scheduler="tcp://host:port"`` sends the work
to a running Dask cluster. Results stream back as they finish, so a caller can save each
one at once (a rerun then resumes), and one failing input never stops the others.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from skytriage.errors import SkytriageInputError

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """The result of one input.

    Attributes
    ----------
    index : int
        Position of the input in the sequence given to :func:`map_inputs`.
    item : Any
        The input itself (usually a path).
    value : Any
        What the function returned; ``None`` when it failed.
    error : str or None
        One-line cause when the function raised, else ``None``.
    """

    index: int
    item: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the function returned normally."""
        return self.error is None


def _guarded(func: Callable[[Any], Any], index: int, item: Any) -> Outcome:
    """Run ``func(item)`` and turn any exception into a one-line error."""
    try:
        return Outcome(index, item, value=func(item))
    except SkytriageInputError as err:
        return Outcome(index, item, error=err.cause)
    except Exception as err:  # one bad input must never stop a batch
        log.debug("%s failed:\n%s", item, traceback.format_exc())
        return Outcome(index, item, error=" ".join(f"{type(err).__name__}: {err}".split()))


def default_workers() -> int:
    """Worker processes to use when the user says nothing: the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def map_inputs(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    description: str = "working",
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Apply ``func`` to every item and return one :class:`Outcome` per item, in input order.

    Parameters
    ----------
    func : callable
        A picklable (module-level) function of one input.
    items : sequence
        The inputs, usually paths.
    workers : int, optional
        Worker processes. ``None`` means the usable cores; ``1`` runs in this process.
        Ignored when ``scheduler`` is given.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    progress : bool
        Draw a progress bar on the terminal.
    description : str
        Label of the progress bar.
    on_outcome : callable, optional
        Called in this process with each :class:`Outcome` as soon as it arrives
        (completion order), e.g. to save partial results.

    Returns
    -------
    list of Outcome
        In the order of ``items``.
    """
    items = list(items)
    if not items:
        return []
    n_workers = default_workers() if workers is None else max(1, int(workers))
    with _progress(progress) as bar:
        task = bar.add_task(description, total=len(items))
        if scheduler is None and (n_workers == 1 or len(items) == 1):
            stream = (_guarded(func, i, item) for i, item in enumerate(items))
            outcomes = _collect(stream, bar, task, on_outcome)
        else:
            outcomes = _map_dask(func, items, n_workers, scheduler, bar, task, on_outcome)
    return sorted(outcomes, key=lambda o: o.index)


def _collect(stream: Iterable[Outcome], bar: Progress, task: Any,
             on_outcome: Callable[[Outcome], None] | None) -> list[Outcome]:
    outcomes = []
    for outcome in stream:
        if on_outcome is not None:
            on_outcome(outcome)
        outcomes.append(outcome)
        bar.advance(task)
    return outcomes


def _map_dask(func, items, n_workers, scheduler, bar, task, on_outcome) -> list[Outcome]:
    from distributed import Client, LocalCluster, as_completed

    if scheduler is not None:
        cluster = None
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=min(n_workers, len(items)), threads_per_worker=1,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        futures = [client.submit(_guarded, func, i, item, pure=False)
                   for i, item in enumerate(items)]
        return _collect((f.result() for f in as_completed(futures)), bar, task, on_outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
