"""Feature extraction on Ray Data: sharded, resumable, deterministic.

Pipeline (docs/design.md §4-5): the driver lists the input and assigns images to shards from the sorted
list; a pool of model actors (each loads the backbone once, on a GPU when the cluster has one) takes
one shard per call, decodes it in *chunks* of ``batch_size`` images (itself, or through CPU decode
tasks), runs one forward pass per chunk, and writes the shard (temp file + rename) and its sha256 to the
output folder. The driver receives only each shard's small record and writes the manifest: no image
or feature byte crosses it, so its memory and traffic do not grow with the data (docs/features.md).

Why chunks rather than letting Ray Data batch loose rows: a CNN's output for an image can depend in
the last bits on which other images share its batch (kernel choice, blocking). Fixing every forward
batch by the shard plan makes features — and so shard hashes — identical across runs, resumes and
worker counts.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from zsl_scale.core import (
    ConfigError,
    InferencePrecision,
    ProgressReporter,
    ShardRecord,
    ShardStore,
    atomic_write_text,
    check_resources,
    check_resume_precision,
    emulation_allowed,
    init_ray,
    precision_header,
    resolve_precision,
    sha256_json,
    target_device,
)
from zsl_scale.features.actor import FeatureActor, _decode_memory
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
    feature set's identity, because they fix row placement and forward batches; so are the resolved
    ``precision`` (compute: fp32, bf16 or fp16 autocast; ``dtype`` is the *stored* type) and
    ``memory_format`` (core.precision). Worker counts and Ray resources are not, so a resumed job may
    use a different cluster.
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    weights_trained_on: str | None = None  # class set of --weights (in1k, in21k, in12k, none …; default unknown)
    dtype: Literal["float16", "float32"] = "float16"
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    batch_size: int = 32
    shard_size: int = 10_000
    input_kind: InputKind = "auto"
    workers: int | None = None
    threads_per_worker: int = 1
    decode_cpus: float = 1.0
    decode: Literal["auto", "actor", "tasks", "gpu"] = "auto"
    worker_cpus: float | None = None
    gpus_per_worker: float = 1.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    address: str | None = None
    wait_timeout: float | None = None  # seconds to wait for a busy cluster's CPUs/GPUs (None: as long as it takes)
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
        if self.decode not in ("auto", "actor", "tasks", "gpu"):
            raise ConfigError(f"decode must be auto, actor, tasks or gpu, got {self.decode!r}")
        if self.decode == "gpu":
            if self.device == "cpu":
                raise ConfigError("--decode gpu decodes on the model actors' GPUs: not with --device cpu")
            from zsl_scale.features.gpu_decode import jpeg_decoder

            jpeg_decoder()  # torchvision must import: checked before Ray starts
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be ≥ 1, got {self.workers}")
        worker_cpus = 1.0 if self.worker_cpus is None else self.worker_cpus
        if min(self.decode_cpus, self.gpus_per_worker, worker_cpus) <= 0:
            raise ConfigError("decode-cpus, worker-cpus and gpus-per-worker must be > 0")
        if self.wait_timeout is not None and self.wait_timeout <= 0:
            raise ConfigError(f"wait-timeout must be > 0 seconds, got {self.wait_timeout:g}")


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
    received_bytes: int = 0  # shard records the driver received from the actors (no feature data)

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
    # absolute on the driver: the actors run in other working folders (on other nodes)
    source, out_dir = Path(source).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    if opts.weights and Path(opts.weights).expanduser().exists():
        opts = replace(opts, weights=str(Path(opts.weights).expanduser().resolve()))
    spec = get_backbone(opts.backbone)
    spec.check(opts.weights)
    kind, refs = list_images(source, opts.input_kind)
    shards = plan_shards(refs, opts.shard_size)
    chosen = resolve_precision(opts.precision, target_device(opts.device, opts.address), opts.memory_format)
    check_resume_precision(out_dir, chosen, opts.overwrite)
    header = {**_header(spec, opts, kind, shards), **precision_header(out_dir, chosen, opts.overwrite)}
    store = ShardStore(Path(out_dir), KIND, header, len(shards)).open(overwrite=opts.overwrite)
    pending = store.pending()
    received = _run_pipeline(spec, opts, shards, pending, store, chosen) if pending else 0
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
        received_bytes=received,
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
                "decode_in_actor": opts.decode in ("actor", "gpu")}
    if opts.decode == "gpu":
        raise ConfigError("--decode gpu needs a GPU, and the Ray cluster has none; use --decode auto")
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


def _shard_rows(shards: list[list[ImageRef]], pending: list[int]) -> list[dict[str, Any]]:
    """One Ray Data row per pending shard: its index and its images (what the actor needs to write it)."""
    return [{"shard": s, "refs": json.dumps({"rows": [r.to_row() for r in shards[s]],
                                             "wnids": [r.wnid for r in shards[s]]})} for s in pending]


def _run_pipeline(
    spec: BackboneSpec,
    opts: ExtractOptions,
    shards: list[list[ImageRef]],
    pending: list[int],
    store: ShardStore,
    chosen: InferencePrecision,
) -> int:
    """Run the actors over the pending shards; each writes its shards, the driver records them as they come.

    Returns the bytes of the records the driver received (what ``benchmarks/extract_driver_load.py`` reports).
    """
    import ray.data

    init_ray(opts.address, log_file=store.out_dir / "ray.log")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False  # records carry their shard index
    res = _resources(opts)
    res["workers"] = min(res["workers"], len(pending))  # more actors than shards would idle
    check_resources(res["workers"], res["num_cpus"], res["num_gpus"], "--workers or --worker-cpus",
                    wait_timeout=opts.wait_timeout, log=lambda line: print(f"features: {line}", file=sys.stderr),
                    timeout_option="--wait-timeout")
    decode_task = None if res["decode_in_actor"] else {
        "num_cpus": opts.decode_cpus,
        "memory": _decode_memory(spec.preprocess, opts.batch_size),  # worker process + the chunk's pixels
    }
    ds = ray.data.from_items(_shard_rows(shards, pending), override_num_blocks=min(len(pending), 4096))
    ds = ds.map_batches(
        FeatureActor,
        batch_size=1,
        fn_constructor_kwargs={"backbone": spec.name, "weights": opts.weights, "dtype": opts.dtype,
                               "threads": opts.threads_per_worker, "device": "cpu" if res["num_gpus"] == 0 else "auto",
                               "batch_size": opts.batch_size, "out_dir": str(store.out_dir.resolve()),
                               "decode_task": decode_task, "precision": chosen.to_dict(),
                               "allow_emulated": emulation_allowed(), "gpu_decode": opts.decode == "gpu"},
        compute=ray.data.ActorPoolStrategy(size=res["workers"]),
        num_cpus=res["num_cpus"],
        num_gpus=res["num_gpus"],
    )
    total, received = sum(len(shards[s]) for s in pending), 0
    with ProgressReporter(total, "features", "images", opts.progress_interval_s) as progress:
        for row in ds.iter_rows():
            received += len(row["record"]) + 8  # the JSON record and the shard index
            record = json.loads(str(row["record"]))
            info = {k: record.pop(k) for k in ("images", "classes", "skipped")}
            store.record(ShardRecord(**record), info)
            progress.advance(info["images"])
    return received
