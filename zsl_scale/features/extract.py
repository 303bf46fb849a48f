"""Feature extraction on Ray Data: sharded, resumable, deterministic.

Pipeline (docs/design.md §4-5): the driver lists the input and assigns images to shards from the sorted
list; CPU tasks read and decode *chunks* of ``batch_size`` images; a pool of model actors (each loads
the backbone once, on a GPU when the cluster has one) turns every chunk into one forward pass; the
driver gathers chunks until a shard is complete and writes it atomically, updating the manifest.

Why chunks rather than letting Ray Data batch loose rows: a CNN's output for an image can depend in
the last bits on which other images share its batch (kernel choice, blocking). Fixing every forward
batch by the shard plan makes features — and so shard hashes — identical across runs, resumes and
worker counts.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from zsl_scale.core import (
    ConfigError,
    ProgressReporter,
    ShardStore,
    atomic_write_text,
    init_ray,
    sha256_json,
    vector_array,
)
from zsl_scale.features.actor import FeatureActor, _decode_memory, decode_chunk
from zsl_scale.features.backbones import BackboneSpec, get_backbone
from zsl_scale.features.inputs import ImageRef, InputKind, list_images
from zsl_scale.features.store import KIND

COUNTS_FILE = "class_counts.tsv"

__all__ = [
    "ExtractOptions",
    "ExtractSummary",
    "extract_features",
]


@dataclass(frozen=True)
class ExtractOptions:
    """Settings of ``zsl-scale features extract``.

    ``batch_size`` (images per forward pass) and ``shard_size`` (images per shard) are part of a
    feature set's identity, because they fix row placement and forward batches; worker counts and
    Ray resources are not, so a resumed job may use a different cluster.
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    weights_trained_on: str | None = None  # class set of --weights (in1k, in21k, in12k, none …; default unknown)
    dtype: Literal["float16", "float32"] = "float16"
    batch_size: int = 32
    shard_size: int = 10_000
    input_kind: InputKind = "auto"
    workers: int | None = None
    threads_per_worker: int = 1
    decode_cpus: float = 1.0
    decode: Literal["auto", "actor", "tasks"] = "auto"
    worker_cpus: float | None = None
    gpus_per_worker: float = 1.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    address: str | None = None
    overwrite: bool = False
    progress_interval_s: float = 30.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run could use."""
        from zsl_scale.imagenet import TRAINING_SETS

        if self.weights_trained_on is not None and self.weights_trained_on not in TRAINING_SETS:
            raise ConfigError(f"weights-trained-on must be one of {', '.join(TRAINING_SETS)}, "
                              f"got {self.weights_trained_on!r}")
        if self.dtype not in ("float16", "float32"):
            raise ConfigError(f"dtype must be float16 or float32, got {self.dtype!r}")
        for name in ("batch_size", "shard_size", "threads_per_worker"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if self.decode not in ("auto", "actor", "tasks"):
            raise ConfigError(f"decode must be auto, actor or tasks, got {self.decode!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be ≥ 1, got {self.workers}")
        worker_cpus = 1.0 if self.worker_cpus is None else self.worker_cpus
        if min(self.decode_cpus, self.gpus_per_worker, worker_cpus) <= 0:
            raise ConfigError("decode-cpus, worker-cpus and gpus-per-worker must be > 0")


@dataclass
class ExtractSummary:
    """What a run did (printed by the CLI, returned to callers)."""

    out_dir: str
    num_shards: int
    shards_written: int
    shards_skipped: int
    images: int
    rows: int
    skipped: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        """Images processed by this run per second (0 when everything was already done)."""
        done = self.images if self.shards_written else 0
        return done / self.seconds if self.seconds > 0 else 0.0


def plan_shards(refs: list[ImageRef], shard_size: int) -> list[list[ImageRef]]:
    """Split the sorted input into consecutive shards: shard *i* always holds the same images."""
    return [refs[i : i + shard_size] for i in range(0, len(refs), shard_size)]


def extract_features(source: str | Path, out_dir: str | Path, opts: ExtractOptions) -> ExtractSummary:
    """Extract pooled backbone features of every image in ``source`` into parquet shards in ``out_dir``.

    Re-running the same command resumes: shards recorded in the manifest with a matching sha256 are
    skipped. All input checks (backbone, weights, input folder) happen before Ray starts or anything
    is written, so bad input never touches existing shards.
    """
    t0 = time.monotonic()
    opts.validate()
    spec = get_backbone(opts.backbone)
    spec.check(opts.weights)
    kind, refs = list_images(source, opts.input_kind)
    shards = plan_shards(refs, opts.shard_size)
    header = _header(spec, opts, kind, shards)
    store = ShardStore(Path(out_dir), KIND, header, len(shards)).open(overwrite=opts.overwrite)
    pending = store.pending()
    if pending:
        _run_pipeline(spec, opts, shards, pending, store)
    manifest = store.finish(_summary(store, str(Path(source).expanduser().resolve())))
    _write_counts(Path(out_dir) / COUNTS_FILE, manifest["class_counts"])
    return ExtractSummary(
        out_dir=str(out_dir),
        num_shards=len(shards),
        shards_written=len(pending),
        shards_skipped=len(shards) - len(pending),
        images=sum(len(shards[i]) for i in pending),
        rows=manifest["rows"],
        skipped=len(manifest["skipped"]),
        seconds=time.monotonic() - t0,
    )


def _header(
    spec: BackboneSpec, opts: ExtractOptions, kind: str, shards: list[list[ImageRef]]
) -> dict[str, Any]:
    plan = [[r.image_id for r in shard] for shard in shards]
    return {
        "backbone": spec.describe(opts.weights, opts.weights_trained_on),
        "preprocessing": spec.preprocess.to_dict(),
        "dim": spec.dim,
        "dtype": opts.dtype,
        "batch_size": opts.batch_size,
        "shard_size": opts.shard_size,
        "input": {"kind": kind, "num_images": sum(map(len, shards)), "plan_sha256": sha256_json(plan)},
    }


def _summary(store: ShardStore, source: str) -> dict[str, Any]:
    from zsl_scale.core import capture

    counts: Counter[str] = Counter()
    skipped: list[dict[str, str]] = []
    for entry in store.manifest["shards"].values():
        counts.update(entry["classes"])
        skipped.extend(entry["skipped"])
    return {
        "source": source,
        "rows": sum(counts.values()),
        "class_counts": dict(sorted(counts.items())),
        "skipped": skipped,
        "provenance": capture("cpu", full=False),
    }


def _write_counts(path: Path, counts: dict[str, int]) -> None:
    """Per-class usable image counts as TSV (header ``wnid<TAB>count``) — the splits stage reads it."""
    lines = ["wnid\tcount"] + [f"{w}\t{n}" for w, n in sorted(counts.items())]
    atomic_write_text(path, "\n".join(lines) + "\n")


# --- Ray pipeline ---------------------------------------------------------------------------------


def _resources(opts: ExtractOptions) -> dict[str, Any]:
    """Actor pool size, per-actor logical resources and where images are decoded, from what the cluster has.

    With GPUs, CPU decode tasks feed one actor per GPU, so decoding overlaps the forward passes. CPU-only
    (``decode: auto``), each actor decodes its own chunks: the same cores would do both jobs anyway, and a
    separate decode stage only adds a process per chunk, a pixel copy through the object store and
    oversubscribed cores (docs/features.md, "Benchmark"). ``decode: tasks`` keeps the separate stage;
    each actor then reserves a share of the CPUs that leaves room for at least one decode task.
    """
    import ray

    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
    if opts.device == "cuda" and gpus == 0:
        raise ConfigError("--device cuda requested but the Ray cluster has no GPU")
    if gpus > 0 and opts.device != "cpu":
        workers = opts.workers or max(1, int(gpus / opts.gpus_per_worker))
        return {"workers": workers, "num_gpus": opts.gpus_per_worker, "num_cpus": opts.worker_cpus or 1.0,
                "decode_in_actor": opts.decode == "actor"}
    in_actor = opts.decode != "tasks"
    decode_cpus = 0.0 if in_actor else opts.decode_cpus
    workers = opts.workers or max(1, int(cpus // opts.threads_per_worker))
    share = (cpus - decode_cpus) / workers
    worker_cpus = opts.worker_cpus or min(float(opts.threads_per_worker), share)
    if worker_cpus <= 0 or workers * worker_cpus + decode_cpus > cpus + 1e-9:
        raise ConfigError(
            f"{workers} workers × {worker_cpus:g} CPUs + {decode_cpus:g} decode CPUs exceed the "
            f"cluster's {cpus:g} CPUs; lower --workers, --worker-cpus or --decode-cpus"
        )
    return {"workers": workers, "num_gpus": 0, "num_cpus": worker_cpus, "decode_in_actor": in_actor}


def _chunk_rows(shards: list[list[ImageRef]], pending: list[int], batch_size: int) -> list[dict[str, Any]]:
    rows = []
    for s in pending:
        for c, start in enumerate(range(0, len(shards[s]), batch_size)):
            refs = shards[s][start : start + batch_size]
            rows.append({"shard": s, "chunk": c, "refs": json.dumps([r.to_row() for r in refs])})
    return rows


def _run_pipeline(
    spec: BackboneSpec,
    opts: ExtractOptions,
    shards: list[list[ImageRef]],
    pending: list[int],
    store: ShardStore,
) -> None:
    import ray.data

    init_ray(opts.address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False  # shards are assembled by (shard, chunk) keys
    res = _resources(opts)
    rows = _chunk_rows(shards, pending, opts.batch_size)
    res["workers"] = min(res["workers"], len(rows))  # more actors than chunks would idle
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4096))
    if not res["decode_in_actor"]:
        ds = ds.map_batches(
            decode_chunk,
            batch_size=1,
            num_cpus=opts.decode_cpus,
            fn_kwargs={"preprocess": spec.preprocess, "batch_size": opts.batch_size},
            # Logical memory of one decode task (worker process + output pixels). Besides being true,
            # it keeps Ray Data from fusing this stage into the actor stage (it fuses stages whose
            # resource requests are equal), which would decode inside the model actors, serially with
            # the forward pass instead of overlapping it.
            memory=_decode_memory(spec.preprocess, opts.batch_size),
        )
    device = "cpu" if res["num_gpus"] == 0 else "auto"
    ds = ds.map_batches(
        FeatureActor,
        batch_size=1,
        fn_constructor_kwargs={"backbone": spec.name, "weights": opts.weights, "dtype": opts.dtype,
                               "threads": opts.threads_per_worker, "device": device,
                               "batch_size": opts.batch_size},
        compute=ray.data.ActorPoolStrategy(size=res["workers"]),
        num_cpus=res["num_cpus"],
        num_gpus=res["num_gpus"],
    )
    n_chunks = {s: -(-len(shards[s]) // opts.batch_size) for s in pending}
    buffers: dict[int, dict[int, tuple[np.ndarray, list[str], np.ndarray]]] = {s: {} for s in pending}
    total = sum(len(shards[s]) for s in pending)
    with ProgressReporter(total, "features", "images", opts.progress_interval_s) as progress:
        for row in ds.iter_rows():
            s, c = int(row["shard"]), int(row["chunk"])
            errors = json.loads(str(row["errors"]))
            buffers[s][c] = (np.asarray(row["ok"]), errors, np.asarray(row["features"]))
            progress.advance(len(errors))
            if len(buffers[s]) == n_chunks[s]:
                _write_shard(store, s, shards[s], buffers.pop(s), spec.dim, opts)


def _write_shard(
    store: ShardStore,
    index: int,
    refs: list[ImageRef],
    chunks: dict[int, tuple[np.ndarray, list[str], np.ndarray]],
    dim: int,
    opts: ExtractOptions,
) -> None:
    ids, wnids, feats, skipped = [], [], [], []
    for c in sorted(chunks):
        ok, errors, features = chunks[c]
        for i, ref in enumerate(refs[c * opts.batch_size : (c + 1) * opts.batch_size]):
            if ok[i]:
                ids.append(ref.image_id)
                wnids.append(ref.wnid)
                feats.append(features[i])
            else:
                skipped.append({"image_id": ref.image_id, "path": ref.path, "error": errors[i]})
    matrix = np.stack(feats) if feats else np.zeros((0, dim), dtype=opts.dtype)
    table = pa.table({
        "image_id": pa.array(ids, pa.string()),
        "wnid": pa.array(wnids, pa.string()),
        "feature": vector_array(matrix.astype(opts.dtype, copy=False)),
    })
    store.write_shard(index, table, {"images": len(refs), "classes": dict(sorted(Counter(wnids).items())),
                                     "skipped": skipped})


# --- reading --------------------------------------------------------------------------------------


