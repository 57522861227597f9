"""The root command, ``skytriage``: one sub-command per task, plus ``simulate``."""

from __future__ import annotations

from typing import Annotated

import typer

from skytriage import __version__
from skytriage.clikit import CliState, run_guarded, setup_logging
from skytriage.crmask.cli import app as crmask_app
from skytriage.crmask.cli import simulate_crmask_command
from skytriage.dashboard.cli import dashboard_command
from skytriage.events.cli import app as events_app
from skytriage.events.cli import simulate_events_command
from skytriage.preview.cli import app as preview_app
from skytriage.preview.cli import simulate_frames_command
from skytriage.ramp.cli import app as ramp_app
from skytriage.ramp.cli import simulate_ramp_command
from skytriage.transients.cli import app as transients_app
from skytriage.transients.cli import simulate_transients_command

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
for _name, _task_app, _simulate in (
        ("preview", preview_app, None), ("crmask", crmask_app, simulate_crmask_command),
        ("ramp", ramp_app, simulate_ramp_command),
        ("transients", transients_app, simulate_transients_command),
        ("events", events_app, simulate_events_command)):
    app.add_typer(_task_app, name=_name)
    if _simulate is not None:
        simulate_app.command(_name)(_simulate)
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


def main() -> None:
    """Entry point of the ``skytriage`` console script."""
    run_guarded(app)
