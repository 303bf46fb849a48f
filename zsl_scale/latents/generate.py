"""Latent generation: encode feature shards and class embeddings with a trained CADA-VAE, on Ray.

Three modes, one output contract (a shard folder, ``kind: latents``; columns ``image_id``,
``source_id``, ``wnid``, ``latent`` as ``fixed_size_list<float32>[L]``):

* ``mu`` — every image of a feature set encoded to its μ (test-time latents). Latent shard *i* holds
  the rows of feature shard *i*, in the same order.
* ``image_samples`` — ``n`` noisy latents per class from that class's image features (the final
  classifier's seen-class training set). With ≥ n images a seeded random subset is used, with fewer
  the class's images are cycled (like the authors' code), each repetition with fresh noise.
* ``class_samples`` — ``n`` noisy latents per class from its class embedding (unseen-class training).

Image features are min-max scaled with the statistics stored in the model checkpoint (fit on the
VAE's training features, :mod:`zsl_scale.cada.scaling`) before they are encoded, exactly as in
training; a checkpoint without them is refused for the two feature modes (``class_samples`` encodes
class embeddings only and does not need them).

Determinism, by construction rather than by hoping two batch shapes round alike: all randomness (row
choice, ε) is drawn in the driver from ``seed`` and the wnid's hash, never from worker state; and every
encoder call sees a batch fixed by the data alone — a class's own rows (``image_samples``), a class's own
embedding (``class_samples``) or a feature shard's rows in ``encode_batch`` chunks from its first row
(``mu``; ``--classes`` filters after encoding). A GEMM's rounding can depend on the batch's shape (MKL
picks other kernels for other M), so a class's latents must never depend on which classes share its
batch: then a subset, a re-sharded run or a re-generated lost shard is bitwise identical to a full run
on the same machine, for any worker count or resume point. Noise follows the model's own parametrisation:
z = μ + σ(logvar)·ε with one scalar ε per sample (:meth:`CadaVae.std`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq

from zsl_scale.core import (
    ConfigError,
    DataError,
    InferencePrecision,
    ProgressReporter,
    ShardRecord,
    ShardStore,
    check_resume_precision,
    emulation_allowed,
    init_ray,
    precision_header,
    read_manifest,
    resolve_precision,
    sha256_file,
    sha256_json,
    shard_files,
    target_device,
)
from zsl_scale.features import read_feature_manifest
from zsl_scale.latents.actor import LatentActor

KIND = "latents"
Mode = Literal["mu", "image_samples", "class_samples"]


@dataclass(frozen=True)
class LatentOptions:
    """Settings of ``zsl-scale latents generate`` (resource settings do not change the output)."""

    per_class: int | None = None
    classes: tuple[str, ...] | None = None
    seed: int = 0
    shard_rows: int = 50_000
    encode_batch: int = 4096
    workers: int | None = None
    threads_per_worker: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    address: str | None = None
    overwrite: bool = False
    progress_interval_s: float = 30.0


# The encoder is an MLP: no memory format to choose. Sets written before precisions were recorded are fp32.
_BEFORE = InferencePrecision("fp32", "contiguous")


@dataclass
class LatentSummary:
    """What a run did."""

    out_dir: str
    mode: str
    num_shards: int
    shards_written: int
    rows: int
    seconds: float


def wnid_stream(seed: int, stream: int, wnid: str) -> np.random.Generator:
    """The RNG of one class: depends only on (seed, stream, wnid), not on which other classes exist."""
    key = int.from_bytes(hashlib.sha256(wnid.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, stream, key])


def generate_latents(
    model_path: str | Path,
    out_dir: str | Path,
    opts: LatentOptions,
    features: str | Path | None = None,
    class_embeddings: str | Path | None = None,
) -> LatentSummary:
    """Encode a feature set (``mu`` / ``image_samples``) or class embeddings (``class_samples``).

    Re-running resumes (finished shards are skipped by manifest + sha256); inputs are checked before
    Ray starts, so bad input never touches existing shards.
    """
    t0 = time.monotonic()
    # absolute on the driver: the actors run in other working folders (on other nodes)
    model_path, out_dir = Path(model_path).resolve(), Path(out_dir).resolve()
    features = Path(features).resolve() if features is not None else None
    class_embeddings = Path(class_embeddings).resolve() if class_embeddings is not None else None
    mode, units, header = _plan(model_path, opts, features, class_embeddings)
    chosen = resolve_precision(opts.precision, target_device(opts.device, opts.address), "contiguous")
    check_resume_precision(out_dir, chosen, opts.overwrite, before=_BEFORE)
    header.update(precision_header(out_dir, chosen, opts.overwrite, before=_BEFORE))
    store = ShardStore(Path(out_dir), KIND, header, len(units)).open(overwrite=opts.overwrite)
    pending = store.pending()
    if pending:
        _run(model_path, class_embeddings, opts, units, pending, store, chosen)
    rows = sum(s["rows"] for s in store.manifest["shards"].values())
    source = Path(features if features is not None else class_embeddings).resolve()  # type: ignore[arg-type]
    store.finish({"rows": rows, "source_path": str(source), "provenance": _provenance()})
    return LatentSummary(str(out_dir), mode, len(units), len(pending), rows, time.monotonic() - t0)


def _provenance() -> dict[str, Any]:
    from zsl_scale.core import capture

    return capture("cpu", full=False)


def _plan(
    model_path: str | Path, opts: LatentOptions, features: str | Path | None, class_embeddings: str | Path | None
) -> tuple[Mode, list[dict[str, Any]], dict[str, Any]]:
    if (features is None) == (class_embeddings is None):
        raise ConfigError("pass exactly one of --features and --class-embeddings")
    if opts.per_class is not None and opts.per_class < 1:
        raise ConfigError(f"--per-class must be ≥ 1, got {opts.per_class}")
    if opts.shard_rows < 1 or opts.encode_batch < 1:
        raise ConfigError("--shard-rows and --encode-batch must be ≥ 1")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise DataError(f"model checkpoint not found: {model_path}")
    from zsl_scale.cada import load_model

    _, cfg = load_model(model_path)
    header: dict[str, Any] = {
        "model": {"file": model_path.name, "sha256": sha256_file(model_path)},
        "latent_dim": cfg.latent_dim,
        "reparam": cfg.reparam,
        "seed": opts.seed,
        "per_class": opts.per_class,
        "classes_sha256": sha256_json(sorted(opts.classes)) if opts.classes is not None else None,
        "encode_batch": opts.encode_batch,
        "shard_rows": opts.shard_rows,
    }
    if features is not None:
        paths = shard_files(features, "features")
        manifest = read_feature_manifest(features)
        _check_dim(cfg, "image", manifest["dim"], f"feature set {features}")
        from zsl_scale.cada import load_model_scaler

        load_model_scaler(model_path).check_dim(manifest["dim"], f"feature set {features}")
        header["source"] = _feature_source(manifest, paths)
        if opts.per_class is None:
            if opts.classes is not None and "class_counts" in manifest:
                _select(sorted(manifest["class_counts"]), opts.classes)  # unknown classes are an error
            header["mode"] = "mu"
            units = [{"kind": "mu", "path": str(p)} for p in paths]
        else:
            header["mode"] = "image_samples"
            units = _image_sample_units(paths, opts)
    else:
        if opts.per_class is None:
            raise ConfigError("--class-embeddings needs --per-class N (latents per class)")
        from zsl_scale.distributed import load_class_table

        table = load_class_table(class_embeddings)
        _check_dim(cfg, "class", table.vectors.shape[1], f"class embeddings {class_embeddings}")
        header["mode"] = "class_samples"
        header["source"] = {"kind": "class_embeddings", "sha256": sha256_file(class_embeddings)}
        wnids = sorted(_select(table.wnids, opts.classes))
        units = _class_sample_units(wnids, opts)
    if not units:
        raise DataError("nothing to encode: no rows / classes left after --classes")
    return header["mode"], units, header


def _feature_source(manifest: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
    """What identifies a feature set in the latents' header (a changed set must not resume into old latents).

    ``features extract`` records its settings' hash and every shard's sha256; feature folders written another
    way (``write_synthetic``, a user's own converter) may lack them, so the header's other fields and the shard
    files themselves are hashed instead.
    """
    settings = manifest.get("settings_sha256") or sha256_json(
        {k: v for k, v in manifest.items() if k not in ("shards", "complete")})
    shards = [manifest["shards"][p.name].get("sha256") or sha256_file(p) for p in paths]
    return {"kind": "features", "settings_sha256": settings, "shards_sha256": sha256_json(shards)}


def _check_dim(cfg: Any, modality: str, dim: int, what: str) -> None:
    try:
        expected = cfg.modality(modality).input_dim
    except KeyError as exc:
        raise DataError(f"the model has no {modality!r} modality") from exc
    if expected != dim:
        raise DataError(f"{what} is {dim}-d but the model's {modality!r} encoder expects {expected}-d")


def _select(wnids: list[str], classes: tuple[str, ...] | None) -> list[str]:
    if classes is None:
        return list(wnids)
    have = set(wnids)
    missing = sorted(set(classes) - have)
    if missing:
        raise DataError(f"{len(missing)} requested classes have no data, e.g. {missing[0]}")
    return [w for w in wnids if w in set(classes)]


def _groups(wnids: list[str], per_class: int, shard_rows: int) -> list[list[str]]:
    step = max(1, shard_rows // per_class)
    return [wnids[i : i + step] for i in range(0, len(wnids), step)]


def _class_sample_units(wnids: list[str], opts: LatentOptions) -> list[dict[str, Any]]:
    n = int(opts.per_class or 0)
    units = []
    for group in _groups(wnids, n, opts.shard_rows):
        items = [[w, wnid_stream(opts.seed, 1, w).standard_normal(n).tolist()] for w in group]
        units.append({"kind": "class_samples", "items": items})
    return units


def _image_sample_units(paths: list[Path], opts: LatentOptions) -> list[dict[str, Any]]:
    """Pick n rows per class (seeded) and their ε; a unit lists (file, row) for each of its samples."""
    n = int(opts.per_class or 0)
    parts = _class_rows(paths)
    units = []
    for group in _groups(_select(sorted(parts), opts.classes), n, opts.shard_rows):
        items = []
        for w in group:
            rng, rows = wnid_stream(opts.seed, 0, w), np.concatenate(parts[w])
            if len(rows) >= n:
                picks = np.sort(rng.choice(len(rows), n, replace=False))
            else:
                picks = np.resize(np.arange(len(rows)), n)
            eps = rng.standard_normal(n)
            items.append([w, rows[picks].tolist(), eps.tolist()])
        units.append({"kind": "image_samples", "files": [str(p) for p in paths], "items": items})
    return units


def _class_rows(paths: list[Path]) -> dict[str, list[np.ndarray]]:
    """Per class, ``[k, 2]`` arrays of (feature shard, row) — from the wnid columns only (cheap)."""
    import pyarrow.compute as pc

    parts: dict[str, list[np.ndarray]] = {}
    for f, path in enumerate(paths):
        enc = pc.dictionary_encode(pq.read_table(path, columns=["wnid"]).column("wnid").combine_chunks())
        codes = enc.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes, minlength=len(enc.dictionary)))
        for k, w in enumerate(enc.dictionary.to_pylist()):
            rows = order[(bounds[k - 1] if k else 0) : bounds[k]]
            parts.setdefault(w, []).append(np.stack([np.full(len(rows), f), rows], axis=1))
    return parts


def _run(model_path: str | Path, class_embeddings: str | Path | None, opts: LatentOptions,
         units: list[dict[str, Any]], pending: list[int], store: ShardStore, chosen: InferencePrecision) -> None:
    import ray.data

    init_ray(opts.address, log_file=store.out_dir / "ray.log")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
    if opts.device == "cuda" and gpus == 0:
        raise ConfigError("--device cuda requested but the Ray cluster has no GPU")
    use_gpu = gpus > 0 and opts.device != "cpu"
    workers = opts.workers or (int(gpus) if use_gpu else max(1, int(cpus // opts.threads_per_worker)))
    workers = min(workers, len(pending))  # more actors than units would idle
    rows = [{"shard": i, "unit": json.dumps(units[i])} for i in pending]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(
        LatentActor,
        batch_size=1,
        fn_constructor_kwargs={
            "model_path": str(model_path), "class_embeddings": str(class_embeddings) if class_embeddings else None,
            "classes": sorted(opts.classes) if opts.classes is not None else None,
            "threads": opts.threads_per_worker, "device": "auto" if use_gpu else "cpu",
            "encode_batch": opts.encode_batch, "out_dir": str(store.out_dir.resolve()),
            "precision": chosen.precision, "allow_emulated": emulation_allowed(),
        },
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1.0 if use_gpu else min(float(opts.threads_per_worker), cpus / workers),
    )
    with ProgressReporter(len(pending), "latents", "shards", opts.progress_interval_s) as progress:
        for row in ds.iter_rows():  # the actors wrote the shards; the driver records them
            record = json.loads(str(row["record"]))
            info = {"classes": record.pop("classes")}
            store.record(ShardRecord(**record), info)
            progress.advance(1)


def read_latent_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a latent folder (mode, model hash, source hashes, shard hashes)."""
    return read_manifest(directory, KIND)
