"""Make the README's pictures from the package's own output.

    python docs/make_figures.py [--out docs/images]

Simulates a small night, runs preview on it, and saves: one frame of every class
(``simulate_frames.png``) and the preview score plot and thumbnails (``preview_*.png``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from skytriage.io import read_frame
from skytriage.preview import run
from skytriage.preview.detect import LABELS
from skytriage.preview.report import score_figure, thumbnail_figure
from skytriage.preview.simulate import simulate_frames
from skytriage.report import figure_png, zscale_image


def class_mosaic(root: Path, truth) -> plt.Figure:
    """A clear single-label example of every class (upper quartile of strength), zscaled."""
    fig, axes = plt.subplots(3, 3, figsize=(9, 9.4))
    for ax, label in zip(axes.ravel(), LABELS, strict=True):
        rows = truth[truth["labels"] == label].sort_values("strength", ascending=False)
        ax.axis("off")
        if rows.empty:
            continue
        row = rows.iloc[min(len(rows) - 1, 0 if label == "normal" else len(rows) // 4)]
        ax.imshow(zscale_image(read_frame(root / row["path"], dtype=None).data, 384),
                  cmap="gray", origin="lower")
        ax.set_title(f"{label}: {row['labels']}", fontsize=9)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth = simulate_frames(root, n_datasets=3, frames_per_dataset=40, shape=(768, 768),
                                seed=11)
        (out / "simulate_frames.png").write_bytes(figure_png(class_mosaic(root, truth), 80))
        result = run([root], workers=1)
        (out / "preview_scores.png").write_bytes(
            figure_png(score_figure(result.frames), 80))
        (out / "preview_thumbnails.png").write_bytes(
            figure_png(thumbnail_figure(result.frames), 70))
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
