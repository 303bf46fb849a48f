"""Feature extraction on Ray Data: sharded, resumable, deterministic.

Pipeline (DESIGN.md §4-5): the driver lists the input and assigns images to shards from the sorted
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
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from zsl_scale.backbones import BackboneSpec, Preprocess, get_backbone
from zsl_scale.errors import ConfigError
from zsl_scale.feature_inputs import ImageRef, InputKind, list_images, load_image
from zsl_scale.io import atomic_write_text, sha256_json
from zsl_scale.progress import ProgressReporter
from zsl_scale.shards import ShardStore, iter_batches, read_manifest, vector_array, vectors

KIND = "features"
COUNTS_FILE = "class_counts.tsv"

__all__ = [
    "ExtractOptions",
    "ExtractSummary",
    "extract_features",
    "feature_matrix",
    "iter_feature_batches",
    "read_feature_manifest",
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
    dtype: Literal["float16", "float32"] = "float16"
    batch_size: int = 32
    shard_size: int = 10_000
    input_kind: InputKind = "auto"
    workers: int | None = None
    threads_per_worker: int = 1
    decode_cpus: float = 1.0
    worker_cpus: float | None = None
    gpus_per_worker: float = 1.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    address: str | None = None
    overwrite: bool = False
    progress_interval_s: float = 30.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run could use."""
        if self.dtype not in ("float16", "float32"):
            raise ConfigError(f"dtype must be float16 or float32, got {self.dtype!r}")
        for name in ("batch_size", "shard_size", "threads_per_worker"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
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
        "backbone": spec.describe(opts.weights),
        "preprocessing": spec.preprocess.to_dict(),
        "dim": spec.dim,
        "dtype": opts.dtype,
        "batch_size": opts.batch_size,
        "shard_size": opts.shard_size,
        "input": {"kind": kind, "num_images": sum(map(len, shards)), "plan_sha256": sha256_json(plan)},
    }


def _summary(store: ShardStore, source: str) -> dict[str, Any]:
    from zsl_scale.provenance import capture

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


def init_ray(address: str | None = None) -> None:
    """Connect to ``address`` (an existing cluster) or start a local Ray; no-op if already connected."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        # Ray starts workers at nice 15 by default; in a local job the workers *are* the job, so let
        # them compete for the CPU like the process that launched them.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(include_dashboard=False, **kwargs)


def _resources(opts: ExtractOptions) -> dict[str, Any]:
    """Actor pool size and per-actor logical resources, from what the cluster has.

    CPU-only: one actor per ``threads_per_worker`` cores, each reserving a share of the CPUs that
    leaves room for at least one decode task (otherwise decode tasks could never be scheduled).
    """
    import ray

    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
    if opts.device == "cuda" and gpus == 0:
        raise ConfigError("--device cuda requested but the Ray cluster has no GPU")
    if gpus > 0 and opts.device != "cpu":
        workers = opts.workers or max(1, int(gpus / opts.gpus_per_worker))
        return {"workers": workers, "num_gpus": opts.gpus_per_worker, "num_cpus": opts.worker_cpus or 1.0}
    workers = opts.workers or max(1, int(cpus // opts.threads_per_worker))
    share = (cpus - opts.decode_cpus) / workers
    worker_cpus = opts.worker_cpus or min(float(opts.threads_per_worker), share)
    if worker_cpus <= 0 or workers * worker_cpus + opts.decode_cpus > cpus + 1e-9:
        raise ConfigError(
            f"{workers} workers × {worker_cpus:g} CPUs + {opts.decode_cpus:g} decode CPUs exceed the "
            f"cluster's {cpus:g} CPUs; lower --workers, --worker-cpus or --decode-cpus"
        )
    return {"workers": workers, "num_gpus": 0, "num_cpus": worker_cpus}


def _chunk_rows(shards: list[list[ImageRef]], pending: list[int], batch_size: int) -> list[dict[str, Any]]:
    rows = []
    for s in pending:
        for c, start in enumerate(range(0, len(shards[s]), batch_size)):
            refs = shards[s][start : start + batch_size]
            rows.append({"shard": s, "chunk": c, "refs": json.dumps([r.to_row() for r in refs])})
    return rows


def _decode_memory(preprocess: Preprocess, batch_size: int) -> int:
    # ~240 MiB measured for a decode worker process (Python, numpy, PIL, pyarrow) + the chunk's pixels
    return 2 * batch_size * preprocess.crop * preprocess.crop * 3 + (256 << 20)


def decode_chunk(
    batch: dict[str, np.ndarray], preprocess: Preprocess, batch_size: int
) -> dict[str, np.ndarray]:
    """Ray Data CPU stage: read + decode + resize one chunk into a padded uint8 array.

    Failed images leave a zero slot with ``ok=False`` and the reason in ``errors``.
    """
    rows = json.loads(batch["refs"][0])
    size = preprocess.crop
    pixels = np.zeros((1, batch_size, size, size, 3), dtype=np.uint8)
    ok = np.zeros((1, batch_size), dtype=bool)
    errors = []
    for i, row in enumerate(rows):
        img, err = load_image(row, preprocess)
        if img is not None:
            pixels[0, i], ok[0, i] = img, True
        errors.append(err)
    return {
        "shard": batch["shard"],
        "chunk": batch["chunk"],
        "pixels": pixels,
        "ok": ok,
        "errors": np.array([json.dumps(errors)]),
    }


class FeatureActor:
    """Ray Data actor: loads the backbone once, then runs one forward pass per chunk.

    Only the images that decoded are forwarded (the padded slots are not), in chunk order, so the
    forward batch of every image is fixed by the shard plan.
    """

    def __init__(self, backbone: str, weights: str | None, dtype: str, threads: int, device: str = "auto"):
        import torch

        from zsl_scale.device import resolve_device

        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        self.device = resolve_device(device)
        self.spec = get_backbone(backbone)
        self.model = self.spec.load(weights, self.device)
        self.dtype = np.dtype(dtype)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ok = batch["ok"]
        feats = np.zeros((1, ok.shape[1], self.spec.dim), dtype=self.dtype)
        idx = np.flatnonzero(ok[0])
        if idx.size:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(batch["pixels"][0][idx])).to(self.device)
                out = self.model.features(self.spec.preprocess.normalize(x))
            feats[0, idx] = out.float().cpu().numpy().astype(self.dtype)
        return {"shard": batch["shard"], "chunk": batch["chunk"], "ok": ok, "errors": batch["errors"],
                "features": feats}


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
                               "threads": opts.threads_per_worker, "device": device},
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


def read_feature_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a feature folder (backbone, dim, dtype, class counts, shard hashes)."""
    return read_manifest(directory, KIND)


def iter_feature_batches(
    directory: str | Path,
    columns: tuple[str, ...] = ("image_id", "wnid", "feature"),
    batch_rows: int = 65536,
) -> Iterator[pa.RecordBatch]:
    """Stream ``pyarrow.RecordBatch``es of a complete feature folder in shard order (bounded memory)."""
    return iter_batches(directory, columns, batch_rows, kind=KIND)


def feature_matrix(batch: pa.RecordBatch | pa.Table, column: str = "feature") -> np.ndarray:
    """The ``[N, D]`` feature array of a batch (float16 or float32, as stored)."""
    return vectors(batch.column(column))
