"""Model files: a torch checkpoint (weights + the arguments that rebuild the network) beside a
JSON model card."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

from skytriage.errors import SkytriageInputError
from skytriage.io.write import atomic_path, write_json


def shipped_weights(name: str) -> Path:
    """Path of a model file shipped in ``skytriage/weights`` (e.g. ``"crmask_unet.pt"``)."""
    return Path(str(files("skytriage") / "weights" / name))


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, config: dict[str, Any],
                    card: dict[str, Any]) -> Path:
    """Write ``path`` (weights and ``config``) and ``path`` with suffix ``.json`` (the card).

    Parameters
    ----------
    path : path-like
        Checkpoint file, conventionally ``*.pt``.
    model : torch.nn.Module
        The trained network; its ``state_dict`` is stored as float32 tensors.
    config : dict
        Everything needed to rebuild the network and its input scaling (JSON-ready).
    card : dict
        Model card: training data, seed, command, metrics.

    Returns
    -------
    pathlib.Path
        The checkpoint path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"config": config, "state_dict": state}, tmp)
    write_json(path.with_suffix(".json"), {**card, "config": config})
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(config, state_dict)``."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SkytriageInputError(path, "model file not found") from None
    except Exception as err:  # torch raises many types for a damaged file
        raise SkytriageInputError(path, f"not a skytriage model checkpoint ({err})") from None
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= payload.keys():
        raise SkytriageInputError(path, "not a skytriage model checkpoint")
    return payload["config"], payload["state_dict"]


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The model card beside a checkpoint (``.json``), or ``{}`` when there is none."""
    card = Path(path).with_suffix(".json")
    return json.loads(card.read_text()) if card.exists() else {}
