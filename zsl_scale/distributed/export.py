"""A training run's final model: load it from the last checkpoint, export it as a self-describing ``vae.pt``."""


from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsl_scale.cada import CadaVae, FeatureScaler, ModelConfig, scaler_from_extra
from zsl_scale.core import DataError, load_torch_file


def load_final_model(run_dir: str | Path) -> tuple[CadaVae, list[str], dict[str, Any]]:
    """The model of a run's latest checkpoint, its training class ids and its state (for later stages).

    A checkpoint without feature-scaler statistics (made before features were scaled) is refused:
    encoding image features with it would silently feed unscaled inputs.
    """
    from zsl_scale.distributed.state import checkpoint_dirs

    found = checkpoint_dirs(Path(run_dir))
    if not found:
        raise DataError(f"no checkpoint under {run_dir}")
    state = load_torch_file(found[-1][1] / "state.pt", "checkpoint")
    scaler_from_extra(state.get("scaler"), f"checkpoint {found[-1][1]}")
    vae = CadaVae(ModelConfig.model_validate(state["model_config"]))
    vae.load_state_dict(state["model"])
    vae.eval()
    return vae, state["wnids"], state


def state_scaler(state: dict[str, Any]) -> FeatureScaler:
    """The feature scaler of a checkpoint state returned by :func:`load_final_model`."""
    return scaler_from_extra(state.get("scaler"), "checkpoint")


def export_model(run_dir: str | Path, dest: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save a run's final model as a self-describing ``vae.pt`` (:func:`zsl_scale.cada.train.save_model`) with
    its feature-scaler statistics, for ``zsl-scale latents generate`` and the job's latents stage."""
    from zsl_scale.cada import save_model

    vae, wnids, state = load_final_model(run_dir)
    return save_model(dest, vae, {**(extra or {}), **state_scaler(state).to_extra(), "train_wnids": wnids,
                                  "epochs": state["epoch"]})


def gather_params(vae: CadaVae) -> np.ndarray:
    """All parameters as one float64 vector (for equivalence checks)."""
    return torch.cat([p.detach().double().flatten().cpu() for p in vae.parameters()]).numpy()
