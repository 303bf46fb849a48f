"""Image feature extraction: backbones, image inputs (folders, lists, tars), Ray-sharded extraction to parquet."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
__all__ = [
    "ExtractOptions",
    "available",
    "compare_with_mat",
    "extract_features",
    "get_backbone",
    "list_images",
    "read_feature_manifest",
    "write_image_list",
    "xlsa17_images",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.features.backbones import available, get_backbone
    from zsl_scale.features.extract import ExtractOptions, extract_features
    from zsl_scale.features.inputs import list_images
    from zsl_scale.features.store import read_feature_manifest
    from zsl_scale.features.xlsa17 import compare_with_mat, write_image_list, xlsa17_images
