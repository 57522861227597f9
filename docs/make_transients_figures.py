"""Pictures of the transients task for the README: cutout triplets, the polar error plot and
completeness against S/N of every method.

    python docs/make_transients_figures.py [--model PATH]

Simulates four 1024x1024 pairs (seeds 7000-7003, never trained on), runs the full method on
the first and the evaluation on all four, and writes ``docs/images/transients_triplets.png``,
``docs/images/transients_polar.png`` and ``docs/images/transients_completeness.png`` with
the report code.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from skytriage.report.html import figure_png
from skytriage.transients import PairConfig, TransientScorer, run
from skytriage.transients.evaluate import evaluate_folders
from skytriage.transients.report import completeness_figure, polar_figure, triplet_figure
from skytriage.transients.simulate import simulate_transients

IMAGES = Path(__file__).parent / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    scorer = TransientScorer.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folders = simulate_transients(tmp, n_pairs=4, seed=7000,
                                      config=PairConfig(shape=(1024, 1024)))
        folder = folders[0]
        result = run(folder / "ref.fits", folder / "sci.fits", model=scorer)
        shown = result.transients.sort_values("snr", key=abs).iloc[::3].head(12)
        (IMAGES / "transients_triplets.png").write_bytes(
            figure_png(triplet_figure(result, shown, columns=4), dpi=110))
        evaluation = evaluate_folders(folders, model=scorer)
        (IMAGES / "transients_polar.png").write_bytes(
            figure_png(polar_figure(evaluation.rows), dpi=110))
        (IMAGES / "transients_completeness.png").write_bytes(figure_png(
            completeness_figure(evaluation.tables()["completeness_vs_snr"]), dpi=110))


if __name__ == "__main__":
    main()
