"""``crmask train-stars``: the star-region network's training command learns and its
checkpoint drives ``crmask run``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from skytriage.crmask import run
from skytriage.crmask.simulate import draw_plan, simulate_exposure

SKYTRIAGE = [sys.executable, "-m", "skytriage"]


def test_train_stars_learns_and_its_checkpoint_is_used(tmp_path):
    out = tmp_path / "model"
    done = subprocess.run([*SKYTRIAGE, "crmask", "train-stars", "--out", str(out),
                           "--seeds", "11000-11005", "--validation-seeds", "11900-11901",
                           "--size", "128x128", "--steps", "300", "--width", "8"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    card = json.loads((out / "crmask_starnet.json").read_text())
    loss = card["history"]["validation_loss"]
    assert loss[-1] < 0.8 * loss[0]  # it learns (measured: 0.358 -> 0.224)
    assert 0.2 <= card["threshold"] <= 0.8
    rng = np.random.default_rng(7300)
    exposure = simulate_exposure(draw_plan(rng, (256, 256)), rng)
    shipped = run(exposure.image, gain=exposure.plan.gain, star_net=True)
    trained = run(exposure.image, gain=exposure.plan.gain, star_net=True,
                  star_net_model=str(out / "crmask_starnet.pt"))
    assert shipped.info["star_net"] and trained.info["star_net"]
    assert not np.array_equal(shipped.probability, trained.probability)
