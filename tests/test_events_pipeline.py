"""events end to end: the shipped model on sessions it never saw, tracks, the trigger, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from skytriage.errors import SkytriageInputError
from skytriage.events import EventsModel, conventional_trigger, run, run_cube
from skytriage.events.evaluate import meteor_events, window_auc
from skytriage.events.simulate import simulate_session
from skytriage.events.train import truth_at


@pytest.fixture(scope="module")
def model():
    return EventsModel.load()


@pytest.fixture(scope="module")
def held_out(model):
    """Sessions of seeds the shipped model was not trained on (its seeds are 100-123)."""
    sessions = [simulate_session(kind, seed=7001, n_frames=768)
                for kind in ("ocean", "cities", "clouds", "moonlit")]
    return [(session, run_cube(session.counts, model=model)) for session in sessions]


def test_shipped_model_finds_meteors_on_unseen_sessions(held_out):
    found = meteors = false = frames = 0
    for session, result in held_out:
        numbers = meteor_events(result.events, result.candidates, session)
        found, meteors = found + numbers["found"], meteors + numbers["meteors"]
        false, frames = false + numbers["false_meteors"], frames + numbers["frames"]
        assert result.event_map.shape == (48, 48)
        assert 0 <= result.event_map.min() and result.event_map.max() <= 1
    assert meteors >= 8
    assert found / meteors >= 0.85
    assert 1000 * false / frames <= 3.0


def test_windows_are_told_apart_on_unseen_sessions(held_out):
    for session, result in held_out:
        cands = result.candidates
        ids = truth_at(session.event_ids, cands.t, cands.y, cands.x)
        kinds = np.concatenate([["none"], session.events["kind"].to_numpy()])
        is_meteor = kinds[ids] == "meteor"
        assert window_auc(cands.features["score"].to_numpy(), is_meteor) > 0.97, session.name


def test_track_direction_and_speed_of_bright_meteors(held_out):
    checked = 0
    for session, result in held_out:
        truth = session.events[(session.events["kind"] == "meteor") & (session.events["snr"] > 12)]
        for _, meteor in truth.iterrows():
            overlap = result.meteors[(result.meteors["t_start"] <= meteor["t_end"])
                                     & (result.meteors["t_end"] >= meteor["t_start"])
                                     & (np.hypot(result.meteors["x"] - meteor["x"],
                                                 result.meteors["y"] - meteor["y"]) < 4)]
            if overlap.empty:
                continue
            best = overlap.loc[overlap["n_pixels"].idxmax()]
            turn = (best["direction"] - meteor["direction"] + 180) % 360 - 180
            assert abs(turn) < 20, (session.name, best["direction"], meteor["direction"])
            assert best["speed"] == pytest.approx(meteor["speed"], rel=0.3)
            checked += 1
    assert checked >= 3


def test_conventional_trigger_sees_bright_meteors():
    session = simulate_session("ocean", seed=7002, n_frames=768)
    events = conventional_trigger(session.counts, session.frame_time)
    assert {"t_start", "t_end", "x", "y", "direction", "speed", "kind"} <= set(events.columns)
    bright = session.events[(session.events["kind"] == "meteor") & (session.events["snr"] > 15)]
    for _, meteor in bright.iterrows():
        overlap = (events["t_start"] <= meteor["t_end"]) & (events["t_end"] >= meteor["t_start"])
        near = events[overlap & (np.hypot(events["x"] - meteor["x"],
                                          events["y"] - meteor["y"]) < 5)]
        assert len(near), f"trigger missed a {meteor['snr']:.0f}-sigma meteor"


def _write(path, data, frame_time=0.04096, times=None):
    hdus = [fits.PrimaryHDU(data.astype(np.float32))]
    hdus[0].header["TIMEDEL"] = frame_time
    if times is not None:
        hdus.append(fits.BinTableHDU.from_columns([fits.Column("TIME", "D", array=times)]))
    fits.HDUList(hdus).writeto(path)
    return path


def test_bad_input_gets_one_clear_line(tmp_path, model):
    cube = simulate_session("ocean", seed=7003, n_frames=128).counts
    with pytest.raises(SkytriageInputError, match=r"moveaxis\(cube, -1, 0\)"):
        run(_write(tmp_path / "yxt.fits", np.moveaxis(cube, 0, -1)), model=model)
    with pytest.raises(SkytriageInputError, match="1 frame: a cube needs at least 48"):
        run(_write(tmp_path / "one.fits", cube[:1]), model=model)
    nan = cube.copy()
    nan[:] = np.nan
    with pytest.raises(SkytriageInputError, match="every frame is NaN"):
        run(_write(tmp_path / "nan.fits", nan), model=model)


def test_nan_frames_and_gaps_do_not_make_events(tmp_path, model):
    session = simulate_session("cities", seed=7004, n_frames=512)
    cube = session.counts.copy()
    cube[200:203] = np.nan
    cube[300] = 0  # a dropped frame
    times = np.arange(len(cube)) * 0.04096
    times[256:] += 5.0  # the recording stopped for five seconds
    result = run(_write(tmp_path / "gappy.fits", cube, times=times), model=model)
    assert any("4 frames" in note for note in result.notes)
    truth = session.events[session.events["kind"] == "meteor"]

    def is_true(event) -> bool:
        overlap = (truth["t_start"] <= event["t_end"]) & (truth["t_end"] >= event["t_start"])
        return bool((overlap & (np.hypot(truth["x"] - event["x"],
                                         truth["y"] - event["y"]) < 6)).any())

    damaged = np.array([200, 201, 202, 300, 255, 256])  # repaired frames and the gap's edges
    found = [is_true(event) for _, event in result.meteors.iterrows()]
    assert sum(found) == len(truth) == 1
    for (_, event), true in zip(result.meteors.iterrows(), found, strict=True):
        near_damage = ((damaged >= event["t_start"] - 5) & (damaged <= event["t_end"] + 5)).any()
        assert true or not near_damage  # no meteor made of the damaged frames
    events = result.events
    assert not ((events["t_start"] < 256) & (events["t_end"] >= 256)).any()  # not across a gap
    assert ((events["t_start"] >= 0) & (events["t_end"] < len(cube))).all()
