"""Pictures of the ramp task for the README: ``python docs/ramp_figures.py``.

Writes ``docs/images/ramp_mask.png`` (mask over the slope image of a simulated ramp) and
``docs/images/ramp_events.png`` (reads of a few events per type), with the report code.
"""

from __future__ import annotations

from pathlib import Path

from skytriage.ramp import RampSimConfig, run, simulate_ramp
from skytriage.ramp.report import mask_figure, ramps_figure
from skytriage.report import figure_png

IMAGES = Path(__file__).resolve().parent / "images"


def main() -> None:
    config = RampSimConfig(shape=(384, 384), n_groups=80, rtn_fraction=0.01,
                           snowball_radius=(6.0, 20.0))
    sim = simulate_ramp(config, 7)
    h = sim.header
    result = run(sim.data, gain=h["GAIN"], read_noise=h["RDNOISE"], saturation=h["SATURATE"])
    result.source = "simulated 384x384x80 ramp (seed 7)"
    IMAGES.mkdir(exist_ok=True)
    (IMAGES / "ramp_mask.png").write_bytes(figure_png(mask_figure(result), dpi=90))
    fig = ramps_figure(result, lambda y, x: sim.data[0, :, y, x])
    (IMAGES / "ramp_events.png").write_bytes(figure_png(fig, dpi=90))


if __name__ == "__main__":
    main()
