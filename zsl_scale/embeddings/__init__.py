"""Class embeddings: sentence embeddings of WordNet lemmas and glosses, imported word2vec / attributes."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "embed_classes": "embed",
    "import_attributes": "importers",
    "import_word2vec": "importers",
    "load_class_embeddings": "embed",
    "resolve_text_model": "embed",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
