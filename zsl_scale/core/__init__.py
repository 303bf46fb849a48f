"""Shared basics of every stage: configs, errors, atomic I/O, paths, progress, provenance, device choice,
the parquet shard store and the Ray connection. Imports nothing else of the package."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core.exports import lazy_exports

_EXPORTS = {
    "ClassifierConfig": "config",
    "ConfigError": "errors",
    "DataError": "errors",
    "ModelSettings": "config",
    "PACKAGE_DATA": "paths",
    "PACKAGE_ROOT": "paths",
    "ProgressReporter": "progress",
    "Reparam": "config",
    "RunConfig": "config",
    "ShardRecord": "shards",
    "ShardStore": "shards",
    "TrainConfig": "config",
    "ZslError": "errors",
    "atomic_path": "io",
    "atomic_write_json": "io",
    "atomic_write_parquet": "io",
    "atomic_write_text": "io",
    "cache_dir": "paths",
    "check_output_dir": "runlock",
    "claim_config": "runlock",
    "capture": "provenance",
    "dump_config": "config",
    "dumps_json": "io",
    "format_eta": "progress",
    "init_ray": "raysession",
    "iter_batches": "shards",
    "lazy_exports": "exports",
    "load_torch_file": "safeload",
    "output_lock": "runlock",
    "load_config": "config",
    "load_settings": "config",
    "read_manifest": "shards",
    "resolve_device": "device",
    "sha256_bytes": "io",
    "sha256_file": "io",
    "sha256_json": "io",
    "shard_paths": "shards",
    "shared_data_dir": "paths",
    "torch_threads": "device",
    "validation_message": "config",
    "vector_array": "shards",
    "parquet_options": "shards",
    "vectors": "shards",
    "write_shard_file": "shards",
    "yaml_error_line": "config",
}
__all__ = [
    "PACKAGE_DATA",
    "PACKAGE_ROOT",
    "ClassifierConfig",
    "ConfigError",
    "DataError",
    "ModelSettings",
    "ProgressReporter",
    "Reparam",
    "RunConfig",
    "ShardRecord",
    "ShardStore",
    "TrainConfig",
    "ZslError",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "cache_dir",
    "capture",
    "check_output_dir",
    "claim_config",
    "dump_config",
    "dumps_json",
    "format_eta",
    "init_ray",
    "iter_batches",
    "lazy_exports",
    "load_config",
    "load_settings",
    "load_torch_file",
    "output_lock",
    "parquet_options",
    "read_manifest",
    "resolve_device",
    "sha256_bytes",
    "sha256_file",
    "sha256_json",
    "shard_paths",
    "shared_data_dir",
    "torch_threads",
    "validation_message",
    "vector_array",
    "vectors",
    "write_shard_file",
    "yaml_error_line",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.core.config import (
        ClassifierConfig,
        ModelSettings,
        Reparam,
        RunConfig,
        TrainConfig,
        dump_config,
        load_config,
        load_settings,
        validation_message,
        yaml_error_line,
    )
    from zsl_scale.core.device import resolve_device, torch_threads
    from zsl_scale.core.errors import ConfigError, DataError, ZslError
    from zsl_scale.core.exports import lazy_exports
    from zsl_scale.core.io import (
        atomic_path,
        atomic_write_json,
        atomic_write_parquet,
        atomic_write_text,
        dumps_json,
        sha256_bytes,
        sha256_file,
        sha256_json,
    )
    from zsl_scale.core.paths import PACKAGE_DATA, PACKAGE_ROOT, cache_dir, shared_data_dir
    from zsl_scale.core.progress import ProgressReporter, format_eta
    from zsl_scale.core.provenance import capture
    from zsl_scale.core.raysession import init_ray
    from zsl_scale.core.runlock import check_output_dir, claim_config, output_lock
    from zsl_scale.core.safeload import load_torch_file
    from zsl_scale.core.shards import (
        ShardRecord,
        ShardStore,
        iter_batches,
        parquet_options,
        read_manifest,
        shard_paths,
        vector_array,
        vectors,
        write_shard_file,
    )
