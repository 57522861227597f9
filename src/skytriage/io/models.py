"""Model files of the scikit-learn models: a joblib file with a JSON model card beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

import joblib

from skytriage.io.write import atomic_path, write_json

Model = TypeVar("Model")


def save_joblib_model(path: str | os.PathLike, model: object, card: dict) -> Path:
    """Write ``model`` to ``path`` (joblib, atomically) and ``card`` beside it (``.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp, compress=3)
    write_json(path.with_suffix(".json"), card)
    return path


def load_joblib_model(path: str | os.PathLike, kind: type[Model]) -> tuple[Model, dict | None]:
    """Read a model written by :func:`save_joblib_model`: ``(model, card or None)``.

    Raises
    ------
    TypeError
        When the file holds something other than a ``kind``.
    """
    path = Path(path)
    model = joblib.load(path)
    if not isinstance(model, kind):
        raise TypeError(f"{path}: not a skytriage {kind.__name__}")
    card_path = path.with_suffix(".json")
    return model, json.loads(card_path.read_text()) if card_path.exists() else None
