"""The CADA-VAE method: model, loss and training step, feature scaling, the final latent classifier."""

from __future__ import annotations

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
    "classify_latents": "classifier",
    "sample_per_class": "classifier",
    "save_model": "train",
    "scaler_from_extra": "scaling",
    "train_step": "train",
    "precision_autocast": "train",
    "train_vae": "train",
    "warmup_weights": "train",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
