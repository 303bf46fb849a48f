"""``zsl-scale dist``: data-parallel CADA-VAE training (Ray Train DDP) and the classifier at scale."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

dist_app = typer.Typer(help="Distributed CADA-VAE training (Ray Train, DDP) and the classifier at scale.",
                       no_args_is_help=True)


def _options_as_overrides(**values: object) -> list[str]:
    keys = {"features": "data.features", "embeddings": "data.embeddings", "name": "name",
            "storage": "scale.storage_path", "workers": "scale.workers", "epochs": "train.epochs",
            "device": "scale.device"}
    return [f"{keys[k]}={v}" for k, v in values.items() if v is not None]


@dist_app.command("train")
def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="Job YAML, e.g. jobs/imagenet-128d.yaml"),
    features: Path | None = typer.Option(None, help="Folder of parquet feature shards (overrides data.features)"),
    embeddings: Path | None = typer.Option(None, help="Class embeddings parquet: wnid + embedding"),
    name: str | None = typer.Option(None, help="Run name: re-running the same name resumes it"),
    storage: str | None = typer.Option(None, help="Storage path for checkpoints (local folder or URI)"),
    workers: int | None = typer.Option(None, help="Data-parallel workers"),
    epochs: int | None = typer.Option(None, help="Epochs (a finished run can be extended)"),
    device: str | None = typer.Option(None, help="auto, cpu or cuda"),
    runner: str = typer.Option("ray", help="ray (Ray Train TorchTrainer), spawn (--workers local processes, no "
                               "Ray) or local (this process, one worker)"),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override any config key: key.path=value"),
) -> None:
    """Train the CADA-VAE data-parallel, with a checkpoint every epoch, losses.csv and loss_curve.png."""
    from zsl_scale.core import atomic_write_text, check_output_dir, no_new_folders_on_error, output_lock
    from zsl_scale.distributed import check_runner, export_model, fit_vae, load_job_config, load_job_inputs, prepare_job

    overrides = _options_as_overrides(features=features, embeddings=embeddings, name=name, storage=storage,
                                      workers=workers, epochs=epochs, device=device)
    cfg = load_job_config(config, [*overrides, *set_])
    check_runner(runner, cfg.scale.workers, "--runner")
    local = "://" not in cfg.scale.storage_path
    run_dir = Path(cfg.scale.storage_path) / cfg.name
    with contextlib.ExitStack() as stack:
        if local:  # a file or read-only folder is one line here, not an error raised inside a worker
            stack.enter_context(no_new_folders_on_error(cfg.scale.storage_path))  # nor an empty folder left
            check_output_dir(cfg.scale.storage_path, "--storage")
            stack.enter_context(output_lock(run_dir, "run folder"))
        job = prepare_job(cfg, *load_job_inputs(cfg))
        summary = fit_vae(job, runner)
        if local:
            import yaml

            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
            export_model(run_dir, run_dir / "vae.pt", {"classifier": cfg.classifier.model_dump(mode="json"),
                                                       "train_features": str(cfg.data.features)})
    typer.echo(f"trained {summary['epochs']} epochs on {summary['rows']} rows, {summary['classes']} classes; "
               f"final loss {summary['final_loss']:.4f}; checkpoint {summary['checkpoint']}")


@dist_app.command("classifier")
def classifier(
    run: Path = typer.Option(..., help="Run folder of `dist train` (its latest checkpoint is used)"),
    features: Path = typer.Option(..., help="Feature shards of the seen (training) classes"),
    embeddings: Path = typer.Option(..., help="Class embeddings parquet (seen and unseen classes)"),
    unseen: Path | None = typer.Option(None, help="File of unseen wnids, one per line"),
    out: Path | None = typer.Option(None, help="Output .pt (default: <run>/classifier.pt)"),
    mode: str = typer.Option("fixed", help="fixed (200/400 latents per seen/unseen class) or dynamic (Fig. 5)"),
    epochs: int = typer.Option(..., help="Epochs — chosen beforehand on the validation split, never on test"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    runner: str = typer.Option("ray", help="ray (Ray Train workers, the run's scale settings) or local (this process)"),
    workers: int | None = typer.Option(None, help="Ray Train workers (default: the run's scale.workers)"),
) -> None:
    """Train the linear softmax over seen ∪ unseen classes on latents generated from the trained VAE.

    With ``--runner ray`` it trains data-parallel on Ray Train like the VAE, with the run's ``scale`` settings
    (``workers``, ``cpus_per_worker``, ``exact_sum``/``streams``, ``address``, ``device``)."""
    from zsl_scale.core import ClassifierConfig, ConfigError, DataError, read_text_file, resolve_device
    from zsl_scale.distributed import (
        ScaleSettings,
        build_bank,
        fit_classifier,
        load_class_table,
        load_final_model,
        open_features,
        save_classifier,
        state_scaler,
    )

    if runner not in ("ray", "local"):
        raise ConfigError(f"--runner must be ray or local, got {runner!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}")
    if mode not in ("fixed", "dynamic"):
        raise ConfigError(f"--mode must be fixed or dynamic, got {mode!r}")
    if epochs < 1:
        raise ConfigError(f"--epochs must be ≥ 1, got {epochs}")
    dest = out or run / "classifier.pt"
    if dest.is_dir():
        raise DataError(f"--out {dest} is a folder; give the classifier's .pt file name")
    if unseen is not None and not unseen.is_file():
        raise DataError(f"unseen class list not found: {unseen}")
    vae, _, state = load_final_model(run)
    source, classes = open_features(features), load_class_table(embeddings)
    seen = list(source.class_counts)
    unseen_ids = [w.strip() for w in read_text_file(unseen, "unseen list").splitlines() if w.strip()] \
        if unseen else []
    cfg = ClassifierConfig.model_validate(state["config"].get("classifier", {}))
    dev = resolve_device(device)
    bank = build_bank(vae, source, classes, seen, unseen_ids, cfg, state_scaler(state), seed=seed, device=dev)
    scale = None
    if runner == "ray":
        scale = ScaleSettings.model_validate(state["config"].get("scale", {}))
        scale.workers = workers or scale.workers
        scale.device = device if device != "auto" else scale.device  # type: ignore[assignment]
    linear, history = fit_classifier(bank, cfg, epochs, scale, dest.parent, mode=mode, seed=seed,  # type: ignore[arg-type]
                                     device=dev)
    save_classifier(dest, linear, bank.wnids, history, epochs, mode=mode)
    typer.echo(f"classifier over {len(bank.wnids)} classes ({len(seen)} seen, {len(unseen_ids)} unseen), "
               f"{bank.num_samples} latents per epoch, final loss {history[-1]['loss']:.4f}: {dest}")


def register(app: typer.Typer) -> None:
    """Mount ``zsl-scale dist`` on the root app."""
    app.add_typer(dist_app, name="dist")
