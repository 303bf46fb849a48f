"""``zsl-scale imagenet evaluate`` (alias ``zsl-scale evaluate imagenet``): one results JSON per split."""

from __future__ import annotations

from pathlib import Path

import typer

imagenet_app = typer.Typer(help="ImageNet-21K GZSL evaluation: one results JSON per split (S, U, H, per class, "
                                "per WordNet group).", no_args_is_help=True)


def _csv(text: str | None, what: str) -> list[str] | None:
    from zsl_scale.core import ConfigError

    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{what} is empty")
    return items


def _top_k(text: str) -> tuple[int, ...]:
    from zsl_scale.core import ConfigError

    try:
        ks = tuple(int(k) for k in _csv(text, "--top-k") or [])
    except ValueError as exc:
        raise ConfigError(f"--top-k must be comma-separated integers, got {text!r}") from exc
    if not ks or min(ks) < 1:
        raise ConfigError(f"--top-k values must be ≥ 1, got {text!r}")
    return ks


@imagenet_app.command("evaluate")
def evaluate(
    run: Path | None = typer.Option(None, help="Work folder of `zsl-scale run` (its splits, latents and "
                                                "embeddings stages give every input below)"),
    splits: str | None = typer.Option(None, help="Comma-separated splits, e.g. 2H,3H (default with --run: all "
                                                  "built)"),
    classifier: Path | None = typer.Option(None, help="classifier.pt (latents stage or `dist classifier`)"),
    queries: Path | None = typer.Option(None, help="μ latents of the test images (`latents generate --features`)"),
    split_root: Path | None = typer.Option(None, help="Root of `zsl-scale splits build` (without --run)"),
    seen: str = typer.Option("1k", help="Seen classes of the search space: 1k or a wnid list file"),
    heldout: Path | None = typer.Option(None, help="Seen classes held out of training (wnid list): scored in U"),
    groups: Path | None = typer.Option(None, help="wnid<TAB>group file (default: the job's, else WordNet's)"),
    wordnet: str | None = typer.Option(None, help="WordNet dict folder for the default groups"),
    out: Path | None = typer.Option(None, help="Results folder (default: <run>/evaluate, else "
                                               "runs/imagenet-eval)"),
    dataset: str | None = typer.Option(None, help="Dataset name in the results (default: the run folder's name, "
                                                  "else imagenet21k)"),
    method: str = typer.Option("CADA-VAE", help="Method name in the results"),
    top_k: str = typer.Option("1,5", help="Comma-separated k for top-k accuracy"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    backend: str = typer.Option("chunked", help="chunked (exact ranking rule) or faiss"),
    calibrated_stacking: float | None = typer.Option(None, help="EXTRA, not the paper's protocol: subtract this "
                                                                "from seen-class scores (method gets +CS)"),
    seed: int = typer.Option(0, help="Seed recorded in the results (the file name's seedN)"),
    batch_rows: int = typer.Option(65536, help="Query rows per scored batch (memory)"),
    notes: str = typer.Option("", help="Free text stored in the results' extra.notes"),
    predictions: Path | None = typer.Option(None, help="Score a prediction file made elsewhere (parquet: image_id "
                                                       "+ scores or topk; docs/methods.md) over --run's test images "
                                                       "instead of a classifier; results say selection: external"),
    universe: str | None = typer.Option(None, help="Score each split restricted to the classes your copy has: "
                                        "in21k-p, in21k-p-w21, in12k, goog21k, counts:<file>, features:<dir> "
                                        "(seen = 1K ∩ U; docs/splits.md)"),
    max_test_per_class: int | None = typer.Option(None, help="Score at most N test images per class (the N "
                                                  "smallest image ids by a seeded hash); labelled 'test ≤ N/class'"),
    allow_pretraining_overlap: bool = typer.Option(False, help="Score splits whose unseen classes the backbone was "
                                                   "trained on (labelled 'pretraining overlap')"),
) -> None:
    """Score test latents over each split's GZSL search space (1K seen + the split's classes).

    One results JSON per split: S, U, H, top-k, per-class and per-WordNet-group accuracy, config and
    manifest hashes. Scoring is the job's score stage, so both give the same numbers.
    """
    from zsl_scale.jobs import evaluate_imagenet
    from zsl_scale.results import read_result
    from zsl_scale.scoring import EvalRequest, ScoreSettings, check_split_names

    req = EvalRequest(run=run, classifier=classifier, queries=queries, splits=_csv(splits, "--splits"),
                      split_root=split_root, seen=seen, heldout=heldout, groups=groups, wordnet=wordnet,
                      universe=universe)
    settings = ScoreSettings(dataset=dataset or (run.resolve().name if run else "imagenet21k"), method=method,
                             splits=req.splits, top_k=_top_k(top_k), device=device, backend=backend,
                             batch_rows=batch_rows, calibrated_stacking=calibrated_stacking, seed=seed,
                             notes=notes, max_test_per_class=max_test_per_class,
                             allow_pretraining_overlap=allow_pretraining_overlap)
    from zsl_scale.core import DataError, output_lock

    if run is not None and not run.is_dir():  # before the lock: its default folder lives inside the run folder
        raise DataError(f"run folder not found: {run}")
    dest = out or (run / "evaluate" if run else Path("runs") / "imagenet-eval")
    if predictions is not None:
        from zsl_scale.core import ConfigError
        from zsl_scale.jobs import score_prediction_file

        if run is None or classifier is not None or queries is not None:
            raise ConfigError("--predictions scores a file over a job folder's test images: pass --run, and no "
                              "--classifier or --queries")
        if not predictions.is_file():
            raise DataError(f"prediction file not found: {predictions}")
        if universe:
            raise ConfigError("--universe is not applied to prediction files: restrict the job's splits (splits "
                              "stage `universe:`) and make the predictions over them")
        check_split_names(req.splits)
    with output_lock(dest):  # checked before any split is scored
        written = (evaluate_imagenet(req, settings, dest) if predictions is None
                   else score_prediction_file(predictions, run, settings, dest))
    unknown = [read_result(p).split for p in written
               if read_result(p).extra.get("eval_set", {}).get("pretraining") == "pretraining unknown"]
    if unknown:
        typer.echo(f"warning: the features' backbone does not say what its weights were trained on; "
                   f"{', '.join(unknown)} scored and labelled 'pretraining unknown' (extract with "
                   "--weights-trained-on to check it)", err=True)
    for path in written:
        rec = read_result(path)
        m = rec.metrics
        ks = "  ".join(f"{k} {v:.2f}" for k, v in m.top_k.items())
        typer.echo(f"{rec.split}: S {_fmt(m.S)}  U {_fmt(m.U)}  H {_fmt(m.H)}  ({ks}; {rec.extra['images']} images, "
                   f"{rec.extra['search_space']} classes) → {path}")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def register(app: typer.Typer) -> None:
    """Mount ``zsl-scale imagenet``."""
    app.add_typer(imagenet_app, name="imagenet")
