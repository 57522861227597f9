"""Plumbing shared by every ``skytriage`` command: default sub-commands, summary, exit codes."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from skytriage.errors import SkytriageInputError, SkytriageUsageError
from skytriage.io.summary import EXIT_USAGE, RunSummary

console = Console(stderr=True, highlight=False)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print summary.json on standard output when done.")
]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the results to.")]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", "-j", min=1,
                 help="Worker processes (default: all cores; 1: serial)."),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786."),
]


@dataclass
class CliState:
    """Options given before the command name (``skytriage -v --json preview ...``)."""

    verbose: int = 0
    json: bool = False


class DefaultCommandGroup(TyperGroup):
    """A group whose default command runs when the first argument is not a sub-command.

    ``skytriage preview DIR`` then means ``skytriage preview run DIR`` while
    ``skytriage preview train ...`` still reaches ``train``.
    """

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if not a.startswith("-")), None)
        help_only = any(a in ("--help", "-h") for a in args) and first is None
        if not help_only and (first is None or first not in self.commands):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def state(ctx: typer.Context) -> CliState:
    """The root options, wherever in the command tree ``ctx`` is."""
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, CliState) else CliState()


def setup_logging(verbose: int) -> None:
    """INFO with ``-v``, DEBUG with ``-vv``, warnings otherwise; messages go to stderr."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)
    # Dask logs every worker start and stop at INFO: only worth seeing with -vv. Its
    # logging is set up from its config when distributed is imported, in this process
    # and in the workers, so the setting goes through the environment.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info" if verbose >= 2 else "warning")


def show_progress() -> bool:
    """Draw progress bars only on a terminal."""
    return sys.stderr.isatty()


def fail_usage(message: str) -> NoReturn:
    """Print a one-line usage error and exit with code 2."""
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def parse_seeds(text: str) -> list[int]:
    """``"1000-1029"``, ``"7"`` or ``"1,5,9"`` -> list of seeds; a usage error otherwise."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", part)
        if not match:
            fail_usage(f"seeds {text!r}: expected FIRST-LAST or a comma-separated list")
        seeds.extend(range(int(match.group(1)), int(match.group(2) or match.group(1)) + 1))
    return seeds


def finish(ctx: typer.Context, summary: RunSummary, out_dir: os.PathLike,
           json_flag: bool) -> NoReturn:
    """Write ``summary.json``, tell the user what happened, and exit with the right code."""
    path = summary.write(out_dir)
    for failure in summary.failed:
        console.print(f"[red]failed:[/red] {failure['path']}: {failure['error']}", soft_wrap=True)
    if json_flag or state(ctx).json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
        console.print(f"{summary.command}: {counts or 'nothing done'}; summary: {path}",
                      soft_wrap=True)
    raise typer.Exit(summary.exit_code)


def run_guarded(app: typer.Typer) -> None:
    """Run the Typer app; turn input and usage errors into one line and exit code 2."""
    try:
        app(standalone_mode=True)
    except (SkytriageInputError, SkytriageUsageError) as err:
        console.print(f"[red]error:[/red] {err}", soft_wrap=True)
        sys.exit(EXIT_USAGE)
