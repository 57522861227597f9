"""The Dask paths (local cluster, remote scheduler) give what the serial path gives."""

from __future__ import annotations

import pandas as pd
import pytest
from distributed import LocalCluster

from skytriage.parallel import map_inputs
from skytriage.preview import run
from skytriage.preview.pipeline import measure_frame


@pytest.fixture(scope="module")
def cluster():
    """A real distributed.LocalCluster with two worker processes."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as local:
        yield local


def _frame_paths(night):
    root, truth = night
    return [str(root / p) for p in truth["path"][:10]]


def test_cluster_map_equals_serial_and_keeps_order(small_night, cluster, tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_text("this is not a FITS file")
    paths = _frame_paths(small_night)
    paths.insert(3, str(bad))

    serial = map_inputs(measure_frame, paths, workers=1, progress=False)
    remote = map_inputs(measure_frame, paths, scheduler=cluster.scheduler_address,
                        progress=False)

    assert [o.item for o in remote] == paths
    assert [o.ok for o in serial] == [o.ok for o in remote] == [p != str(bad) for p in paths]
    assert serial[3].error and serial[3].error == remote[3].error
    for a, b in zip(serial, remote, strict=True):
        if a.ok:
            assert a.value == b.value


def test_local_workers_equal_serial(small_night):
    paths = _frame_paths(small_night)[:4]
    serial = map_inputs(measure_frame, paths, workers=1, progress=False)
    local = map_inputs(measure_frame, paths, workers=2, progress=False)
    assert [o.value for o in serial] == [o.value for o in local]


def test_preview_on_cluster_equals_serial(small_night, cluster):
    root, _ = small_night
    serial = run([root], workers=1).frames
    remote = run([root], scheduler=cluster.scheduler_address).frames
    pd.testing.assert_frame_equal(serial, remote)
    assert len(serial) == 48


def test_outcomes_arrive_as_they_finish(small_night):
    seen = []
    outcomes = map_inputs(measure_frame, _frame_paths(small_night)[:3], workers=1,
                          progress=False, on_outcome=seen.append)
    assert sorted(o.index for o in seen) == [0, 1, 2]
    assert all(o.ok for o in outcomes)
