"""The CADA-VAE method: model, loss and training step, feature scaling, the final latent classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "CadaVae": "model",
    "FeatureScaler": "scaling",
    "LossTerms": "model",
    "LossWeights": "model",
    "MIN_KEY": "scaling",
    "ModelConfig": "model",
    "cada_loss": "model",
    "encode": "classifier",
    "fit_feature_scaler": "scaling",
    "fit_linear_softmax": "classifier",
    "load_model": "train",
    "load_model_scaler": "scaling",
    "make_optimizer": "train",
    "paper_config": "model",
    "predict": "classifier",
    "sample_per_class": "classifier",
    "save_model": "train",
    "scaler_from_extra": "scaling",
    "train_step": "train",
    "precision_autocast": "train",
    "train_vae": "train",
    "warmup_weights": "train",
}
__all__ = [
    "MIN_KEY",
    "CadaVae",
    "FeatureScaler",
    "LossTerms",
    "LossWeights",
    "ModelConfig",
    "cada_loss",
    "encode",
    "fit_feature_scaler",
    "fit_linear_softmax",
    "load_model",
    "load_model_scaler",
    "make_optimizer",
    "paper_config",
    "precision_autocast",
    "predict",
    "sample_per_class",
    "save_model",
    "scaler_from_extra",
    "train_step",
    "train_vae",
    "warmup_weights",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.method.classifier import encode, fit_linear_softmax, predict, sample_per_class
    from zsl_scale.method.model import CadaVae, LossTerms, LossWeights, ModelConfig, cada_loss, paper_config
    from zsl_scale.method.scaling import (
        MIN_KEY,
        FeatureScaler,
        fit_feature_scaler,
        load_model_scaler,
        scaler_from_extra,
    )
    from zsl_scale.method.train import (
        load_model,
        make_optimizer,
        precision_autocast,
        save_model,
        train_step,
        train_vae,
        warmup_weights,
    )
