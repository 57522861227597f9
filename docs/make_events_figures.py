"""Pictures of the events task for the README: docs/images/events_*.png.

    python docs/make_events_figures.py

Simulates one cities session (seed 9100, never trained on), runs the shipped model on it
and saves the report's event map and the light curve and track of its brightest meteor.
"""

from __future__ import annotations

from pathlib import Path

from skytriage.events import run_cube, simulate_session
from skytriage.events.report import event_map_figure, meteor_figure
from skytriage.report.html import figure_png

IMAGES = Path(__file__).parent / "images"


def main() -> None:
    session = simulate_session("cities", seed=9100, n_frames=2048)
    result = run_cube(session.counts)
    IMAGES.mkdir(exist_ok=True)
    (IMAGES / "events_map.png").write_bytes(figure_png(event_map_figure(result)))
    brightest = result.meteors.sort_values("peak", ascending=False).iloc[0]
    (IMAGES / "events_meteor.png").write_bytes(figure_png(meteor_figure(result, brightest)))


if __name__ == "__main__":
    main()
