"""Shared fixtures: small simulated nights written once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_night(tmp_path_factory):
    """Two simulated datasets of 24 frames of 256x256 px, with their truth table.

    Returns
    -------
    (pathlib.Path, pandas.DataFrame)
        The night folder and its truth table.
    """
    from skytriage.preview.simulate import simulate_frames

    root = tmp_path_factory.mktemp("night")
    truth = simulate_frames(root, n_datasets=2, frames_per_dataset=24, shape=(256, 256), seed=3)
    return root, truth


@pytest.fixture(scope="session")
def dashboard_result(tmp_path_factory):
    """A real preview result for the dashboard tests: 2 datasets of 12 frames of 256x256 px.

    Returns
    -------
    pathlib.Path
        The result folder (frames.parquet, report.html, ...); frame paths are absolute.
    """
    from dashboard_fixtures import make_result

    return make_result(tmp_path_factory.mktemp("dashboard"))
