"""``zsl-scale features``: extract backbone features into parquet shards; list backbones; count images."""

from __future__ import annotations

from pathlib import Path

import typer

features_app = typer.Typer(help="Image features: sharded, resumable extraction on Ray.", no_args_is_help=True)


@features_app.command("extract")
def extract(
    source: Path = typer.Argument(..., help="ImageNet-style tree <wnid>/<file>, folder of <wnid>.tar, or list file"),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for shards + manifest.json"),
    backbone: str = typer.Option("efficientnet_lite0", help="Backbone name (see `features backbones`)"),
    weights: Path | None = typer.Option(None, help="Local weights file (default: the backbone's own)"),
    weights_trained_on: str | None = typer.Option(None, help="Classes the --weights were trained on: in1k, in21k, "
                                                  "in12k, in21k-p, none … (default: the backbone's own, else unknown); "
                                                  "ImageNet scoring refuses unseen classes the backbone saw"),
    dtype: str = typer.Option("float16", help="Stored feature dtype: float16 or float32"),
    precision: str = typer.Option("fp32", help="Compute precision: fp32, bf16 (CPUs with AVX512_BF16/AMX, "
                                  "GPUs), fp16 (GPUs) or auto (the fastest of these here); recorded in the manifest"),
    memory_format: str = typer.Option("auto", help="auto (channels_last), channels_last or contiguous"),
    batch_size: int = typer.Option(32, help="Images per forward pass (fixed per shard plan)"),
    shard_size: int = typer.Option(10_000, help="Images per parquet shard"),
    input_kind: str = typer.Option("auto", help="auto, tree, tars or list"),
    workers: int | None = typer.Option(None, help="Model actors (default: one per GPU, else per core)"),
    threads_per_worker: int = typer.Option(1, help="torch threads in each model actor"),
    decode: str = typer.Option("auto", help="Where images are decoded: auto (in the model actors on CPU-only "
                               "clusters, in CPU tasks when there are GPUs), actor, tasks or gpu (JPEGs on the "
                               "actors' GPUs, needs torchvision; CPU fallback for the rest)"),
    decode_cpus: float = typer.Option(1.0, help="Ray CPUs per decode task (decode: tasks)"),
    worker_cpus: float | None = typer.Option(None, help="Ray CPUs reserved per model actor"),
    gpus_per_worker: float = typer.Option(1.0, help="GPUs per model actor when the cluster has GPUs"),
    device: str = typer.Option("auto", help="auto (GPU if the cluster has one), cpu or cuda"),
    address: str | None = typer.Option(None, help="An existing Ray cluster (default: $RAY_ADDRESS, else local Ray)"),
    wait_timeout: float | None = typer.Option(None, help="Seconds to wait for a busy cluster's CPUs/GPUs before "
                                              "giving up (default: wait, with a line every minute)"),
    overwrite: bool = typer.Option(False, help="Start over even if --out holds shards of other settings"),
    log_interval: float = typer.Option(30.0, help="Seconds between progress lines when not on a terminal"),
) -> None:
    """Extract pooled features of every image; re-running the same command resumes where it stopped."""
    from zsl_scale.core import ConfigError
    from zsl_scale.features import ExtractOptions, extract_features

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {device!r}")
    opts = ExtractOptions(
        backbone=backbone,
        weights=str(weights) if weights else None,
        weights_trained_on=weights_trained_on,
        dtype=dtype,  # type: ignore[arg-type]  # validated by ExtractOptions.validate
        precision=precision,  # type: ignore[arg-type]  # validated by core.resolve_precision
        memory_format=memory_format,  # type: ignore[arg-type]
        batch_size=batch_size,
        shard_size=shard_size,
        input_kind=input_kind,  # type: ignore[arg-type]
        workers=workers,
        threads_per_worker=threads_per_worker,
        decode=decode,  # type: ignore[arg-type]
        decode_cpus=decode_cpus,
        worker_cpus=worker_cpus,
        gpus_per_worker=gpus_per_worker,
        device=device,  # type: ignore[arg-type]
        address=address,
        wait_timeout=wait_timeout,
        overwrite=overwrite,
        progress_interval_s=log_interval,
    )
    from zsl_scale.core import output_lock

    with output_lock(out):
        s = extract_features(source, out, opts)
    typer.echo(
        f"features: {s.rows} rows in {s.num_shards} shards ({s.shards_written} written, "
        f"{s.shards_skipped} already done), {s.skipped} images skipped, "
        f"{s.images_per_s:.1f} images/s → {s.out_dir}"
    )


@features_app.command("backbones")
def backbones() -> None:
    """List the registered backbones."""
    from zsl_scale.features import available, get_backbone

    for name in available():
        spec = get_backbone(name)
        typer.echo(f"{name}\t{spec.dim}-d\ttrained on {spec.trained_on}\t{spec.description}")


@features_app.command("count")
def count(
    source: Path = typer.Argument(..., help="ImageNet-style tree, folder of <wnid>.tar, or list file"),
    out: Path = typer.Option(..., "--out", "-o", help="TSV to write (header wnid<TAB>count)"),
    input_kind: str = typer.Option("auto", help="auto, tree, tars or list"),
) -> None:
    """Count input files per class without decoding them (fast; corrupt files are counted too)."""
    from collections import Counter

    from zsl_scale.core import atomic_write_text
    from zsl_scale.features import list_images

    _, refs = list_images(source, input_kind)  # type: ignore[arg-type]
    counts = Counter(r.wnid for r in refs)
    lines = ["wnid\tcount"] + [f"{w}\t{n}" for w, n in sorted(counts.items())]
    atomic_write_text(out, "\n".join(lines) + "\n")
    typer.echo(f"counted {len(refs)} files in {len(counts)} classes → {out}")


def register(app: typer.Typer) -> None:
    """Mount ``features`` on the root app."""
    app.add_typer(features_app, name="features")
