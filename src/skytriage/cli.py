"""The root command, ``skytriage``: one sub-command per task, plus ``simulate``."""

from __future__ import annotations

from typing import Annotated

import typer

from skytriage import __version__
from skytriage.clikit import CliState, not_built, run_guarded, setup_logging
from skytriage.dashboard.cli import dashboard_command
from skytriage.preview.cli import app as preview_app
from skytriage.preview.cli import simulate_frames_command

app = typer.Typer(
    name="skytriage",
    help="Find what is wrong, and what is new, in astronomical detector data.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
simulate_app = typer.Typer(help="Write labelled synthetic data for one task.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")
app.add_typer(preview_app, name="preview")
simulate_app.command("frames")(simulate_frames_command)
app.command("dashboard")(dashboard_command)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"skytriage {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="More messages (-vv for debug).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary.json when done.")] = False,
) -> None:
    """Find what is wrong, and what is new, in astronomical detector data."""
    ctx.obj = CliState(verbose=verbose, json=json_out)
    setup_logging(verbose)


_NOT_BUILT_SIMULATORS = {"crmask": 5, "ramp": 6, "transients": 7, "events": 8}
_NOT_BUILT_TASKS = {"crmask": (5, "cosmic-ray masks and inpainting for single exposures"),
                    "ramp": (6, "cosmic rays, telegraph noise and snowballs in up-the-ramp cubes"),
                    "transients": (7, "new and changed sources in reference/science pairs"),
                    "events": (8, "meteors and fast transients in per-pixel time series")}


def _not_built_command(ctx: typer.Context) -> None:
    """Stand-in for a designed command that is not built yet."""
    parent = ctx.parent.info_name if ctx.parent is not None else ""
    if parent == "simulate":
        not_built(f"simulate {ctx.info_name}", _NOT_BUILT_SIMULATORS[ctx.info_name])
    not_built(ctx.info_name, _NOT_BUILT_TASKS[ctx.info_name][0])


def _register_not_built() -> None:
    """Commands of the design that are not built yet: listed in --help, exit 2 when called."""
    settings = {"ignore_unknown_options": True, "allow_extra_args": True}
    for kind, issue in _NOT_BUILT_SIMULATORS.items():
        simulate_app.command(kind, help=f"(not built yet: issue {issue})",
                             context_settings=settings)(_not_built_command)
    for name, (issue, what) in _NOT_BUILT_TASKS.items():
        app.command(name, help=f"{what.capitalize()} (not built yet: issue {issue}).",
                    context_settings=settings)(_not_built_command)


_register_not_built()


def main() -> None:
    """Entry point of the ``skytriage`` console script."""
    run_guarded(app)
