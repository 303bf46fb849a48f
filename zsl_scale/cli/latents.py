"""``zsl-scale latents generate``: encode feature shards / class embeddings with a trained CADA-VAE."""

from __future__ import annotations

from pathlib import Path

import typer

latents_app = typer.Typer(help="Latents: encode features and class embeddings with a trained model.",
                          no_args_is_help=True)


def _read_classes(path: Path | None) -> tuple[str, ...] | None:
    """One wnid per line (the splits format); blank lines and ``#`` comments ignored."""
    from zsl_scale.core import DataError, read_text_file

    if path is None:
        return None
    if not path.is_file():
        raise DataError(f"class list not found: {path}")
    lines = [ln.strip() for ln in read_text_file(path, "class list").splitlines()]
    classes = tuple(ln for ln in lines if ln and not ln.startswith("#"))
    if not classes:
        raise DataError(f"class list {path} is empty")
    return classes


@latents_app.command("generate")
def generate(
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint written by training (save_model)"),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for latent shards + manifest.json"),
    features: Path | None = typer.Option(None, help="Feature folder (from `features extract`)"),
    class_embeddings: Path | None = typer.Option(None, help="Parquet: wnid + one vector column"),
    per_class: int | None = typer.Option(
        None, help="Noisy latents per class (omit with --features for μ of every image)"
    ),
    classes: Path | None = typer.Option(None, help="Only these classes (one wnid per line)"),
    seed: int = typer.Option(0, help="Seed for row choice and noise"),
    shard_rows: int = typer.Option(50_000, help="Rows per output shard in the per-class modes"),
    encode_batch: int = typer.Option(4096, help="Rows per encoder forward pass"),
    workers: int | None = typer.Option(None, help="Encoder actors (default: one per GPU, else per core)"),
    threads_per_worker: int = typer.Option(1, help="torch threads in each actor"),
    device: str = typer.Option("auto", help="auto (GPU if the cluster has one), cpu or cuda"),
    precision: str = typer.Option("fp32", help="Encoder precision: fp32, bf16 (CPUs with AVX512_BF16/AMX, GPUs), "
                                  "fp16 (GPUs) or auto; recorded in the manifest"),
    address: str | None = typer.Option(None, help="An existing Ray cluster (default: $RAY_ADDRESS, else local Ray)"),
    overwrite: bool = typer.Option(False, help="Start over even if --out holds shards of other settings"),
    log_interval: float = typer.Option(30.0, help="Seconds between progress lines when not on a terminal"),
) -> None:
    """Write latent shards: μ per image (--features), or N noisy latents per class (--per-class).

    Re-running the same command resumes where it stopped; outputs are identical for a given seed.
    """
    from zsl_scale.core import ConfigError, output_lock
    from zsl_scale.latents import LatentOptions, generate_latents

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {device!r}")
    opts = LatentOptions(
        per_class=per_class,
        classes=_read_classes(classes),
        seed=seed,
        shard_rows=shard_rows,
        encode_batch=encode_batch,
        workers=workers,
        threads_per_worker=threads_per_worker,
        device=device,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]  # validated by core.resolve_precision
        address=address,
        overwrite=overwrite,
        progress_interval_s=log_interval,
    )
    with output_lock(out):
        s = generate_latents(model, out, opts, features=features, class_embeddings=class_embeddings)
    typer.echo(f"latents ({s.mode}): {s.rows} rows in {s.num_shards} shards ({s.shards_written} written) "
               f"in {s.seconds:.1f} s → {s.out_dir}")


def register(app: typer.Typer) -> None:
    """Mount ``latents`` on the root app."""
    app.add_typer(latents_app, name="latents")
