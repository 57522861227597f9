"""Simulated Mini-EUSO sessions: the truth is consistent, and the background is recoverable."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.events.background import background_model
from skytriage.events.simulate import EVENT_KINDS, SESSION_KINDS, simulate_session
from skytriage.io import read_cube


@pytest.fixture(scope="module")
def sessions():
    return {kind: simulate_session(kind, seed=11, n_frames=768) for kind in SESSION_KINDS}


def test_sessions_hold_every_event_kind_and_truth_matches_the_cube(sessions):
    kinds = set()
    for session in sessions.values():
        assert session.counts.shape == (768, 48, 48) and session.counts.dtype == np.float32
        assert np.array_equal(session.counts, np.round(session.counts))  # Poisson counts
        kinds |= set(session.events["kind"])
        t = np.nonzero(session.event_ids)[0]
        owners = session.event_ids[session.event_ids > 0]
        first, last = np.full(owners.max() + 1, 1 << 30), np.full(owners.max() + 1, -1)
        np.minimum.at(first, owners, t)
        np.maximum.at(last, owners, t)
        events = session.events
        assert (last[events["id"]] >= 0).all(), "every listed event owns pixel-frames"
        assert (events["t_start"] <= first[events["id"]]).all()
        assert (last[events["id"]] <= events["t_end"]).all()
        # where a meteor is, the counts exceed the background on average
        mask = session.meteor_mask
        excess = session.counts[mask] - session.background[mask]
        assert mask.any() and excess.mean() > 2 * np.sqrt(session.background[mask]).mean()
    assert kinds == set(EVENT_KINDS)


def test_meteors_are_small_slow_spots_with_faint_ones(sessions):
    meteors = [s.events[s.events["kind"] == "meteor"] for s in sessions.values()]
    table = np.concatenate([m[["speed", "snr"]].to_numpy() for m in meteors])
    assert ((table[:, 0] >= 2) & (table[:, 0] <= 16)).all()
    assert table[:, 1].min() < 8  # a few sigma
    session = sessions["ocean"]
    for event_id in session.events.loc[session.events["kind"] == "meteor", "id"]:
        per_frame = (session.event_ids == event_id).sum(axis=(1, 2))
        assert per_frame.max() <= 9  # a spot of a few pixels, never a blob


def test_ground_velocity_is_measured_from_the_data(sessions):
    for kind in ("cities", "moonlit"):
        session = sessions[kind]
        model = background_model(session.counts)
        truth = np.asarray(session.ground_velocity) * session.frame_time
        error = np.hypot(*(np.asarray(model.velocity) - truth))
        assert error < 0.15 * np.hypot(*truth), (kind, model.velocity, truth)
        quiet = session.event_ids == 0
        z = model.significance(session.counts, 0, len(session.counts))
        assert 0.8 < z[quiet].std() < 1.2


def test_written_session_reads_back(tmp_path, sessions):
    written = sessions["clouds"].write(tmp_path)
    cube = read_cube(written["cube"])
    assert cube.data.shape == (768, 48, 48)
    assert cube.header["TIMEDEL"] == pytest.approx(0.04096)
    mask = read_cube(written["mask"], dtype=None).data
    assert np.array_equal(mask.astype(bool), sessions["clouds"].meteor_mask)
