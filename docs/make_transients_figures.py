"""Pictures of the transients task for the README: cutout triplets and the polar error plot.

    python docs/make_transients_figures.py [--model PATH]

Simulates one 1024x1024 pair (seed 7000, never trained on), runs the full method and the
evaluation on it, and writes ``docs/images/transients_triplets.png`` and
``docs/images/transients_polar.png`` with the report code.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from skytriage.report.html import figure_png
from skytriage.transients import PairConfig, TransientScorer, run
from skytriage.transients.evaluate import evaluate_folders
from skytriage.transients.report import polar_figure, triplet_figure
from skytriage.transients.simulate import simulate_transients

IMAGES = Path(__file__).parent / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    scorer = TransientScorer.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = simulate_transients(tmp, seed=7000, config=PairConfig(shape=(1024, 1024)))[0]
        result = run(folder / "ref.fits", folder / "sci.fits", model=scorer)
        shown = result.transients.sort_values("snr", key=abs).iloc[::3].head(12)
        (IMAGES / "transients_triplets.png").write_bytes(
            figure_png(triplet_figure(result, shown, columns=4), dpi=110))
        evaluation = evaluate_folders([folder], model=scorer)
        (IMAGES / "transients_polar.png").write_bytes(
            figure_png(polar_figure(evaluation.rows), dpi=110))


if __name__ == "__main__":
    main()
