"""Image feature extraction: backbones, image inputs (folders, lists, tars), Ray-sharded extraction to parquet."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "ExtractOptions": "extract",
    "available": "backbones",
    "compare_with_mat": "xlsa17",
    "extract_features": "extract",
    "get_backbone": "backbones",
    "list_images": "inputs",
    "read_feature_manifest": "store",
    "write_image_list": "xlsa17",
    "xlsa17_images": "xlsa17",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
