"""Latent generation on Ray: encode feature shards and class embeddings with a trained CADA-VAE."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "LatentOptions": "generate",
    "generate_latents": "generate",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
