"""Latent generation on Ray: encode feature shards and class embeddings with a trained CADA-VAE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "LatentOptions": "generate",
    "generate_latents": "generate",
}
__all__ = [
    "LatentOptions",
    "generate_latents",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.latents.generate import LatentOptions, generate_latents
