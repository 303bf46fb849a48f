"""Class embeddings: sentence embeddings of WordNet lemmas and glosses, imported word2vec / attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "embed_classes": "embed",
    "import_attributes": "importers",
    "import_word2vec": "importers",
    "load_class_embeddings": "embed",
    "resolve_text_model": "embed",
}
__all__ = [
    "embed_classes",
    "import_attributes",
    "import_word2vec",
    "load_class_embeddings",
    "resolve_text_model",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.embeddings.embed import embed_classes, load_class_embeddings, resolve_text_model
    from zsl_scale.embeddings.importers import import_attributes, import_word2vec
