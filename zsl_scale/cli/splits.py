"""``zsl-scale splits build | show | validate | compare | hops``: the ImageNet-21K zero-shot splits."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from zsl_scale.core import DataError

splits_app = typer.Typer(help="ImageNet-21K zero-shot splits (2H, 3H, M*/L*, All) from WordNet.", no_args_is_help=True)

_ROOT_HELP = "Splits root (default: $ZSL_SCALE_SPLITS, else <checkout>/splits, else ./splits)"
_COUNTS_HELP = "Per-class image counts (wnid,count as CSV/TSV or parquet), needed for M*/L* splits"


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@splits_app.command("build")
def build(
    split: list[str] = typer.Option(None, "--split", "-s", help="Split(s) to build (default: 2H, 3H, All; "
                                    "plus M*/L* when --counts is given)"),
    counts: Path = typer.Option(None, "--counts", help=_COUNTS_HELP),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    hop_graph: str = typer.Option("imagenet", help="imagenet, wordnet or imagenet-edges (see docs/splits.md)"),
    hop_direction: str = typer.Option("undirected", help="undirected, tree or directed"),
    hop_count: str = typer.Option("synsets", help="Count hops as synsets on the path (k hops = k-1 edges) or edges"),
    wordnet: Path = typer.Option(None, "--wordnet", help="WordNet dict/nltk directory (default: auto-detect)"),
) -> None:
    """Build splits and write <root>/imagenet21k/<split>/{<split>.txt, manifest.json}.

    Every input is checked before anything is written: bad input leaves existing splits untouched.
    """
    from zsl_scale.imagenet import COUNT_SPLITS, STRUCTURAL_SPLITS, HopDefinition, build_splits, load_manifest

    names = list(split) if split else [*STRUCTURAL_SPLITS, *(COUNT_SPLITS if counts else ())]
    hops = HopDefinition(graph=hop_graph, direction=hop_direction, count=hop_count)
    dirs = build_splits(names, root=root, counts_path=counts, hops=hops, wordnet=wordnet)

    for name, d in zip(names, dirs, strict=True):
        print(f"{name}: {load_manifest(name, root)['num_classes']} classes -> {d}")


@splits_app.command("show")
def show(
    split: list[str] = typer.Argument(None, help="Split(s) to show (default: every built split)"),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    sample: int = typer.Option(5, help="Classes to list per split"),
) -> None:
    """Print split sizes, definitions and a sample of classes with their lemmas."""
    from zsl_scale.imagenet import built_split_names, first_lemma, load_manifest, load_split

    names = list(split) if split else built_split_names(root)
    if not names:
        raise DataError("no built splits found (run `zsl-scale splits build`)")
    table = Table("split", "classes", "definition", "sample")
    for name in names:
        wnids = load_split(name, root)
        manifest = load_manifest(name, root)
        step = max(1, len(wnids) // max(sample, 1))
        picked = wnids[::step][:sample]
        table.add_row(name, str(len(wnids)), manifest["definition"],
                      "\n".join(f"{w} {first_lemma(w)}" for w in picked))
    _console().print(table)


@splits_app.command("validate")
def validate(
    split: list[str] = typer.Argument(None, help="Split(s) to check (default: every built split)"),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    counts: Path = typer.Option(None, "--counts", help=_COUNTS_HELP + " (to rebuild M*/L* too)"),
    wordnet: Path = typer.Option(None, "--wordnet", help="WordNet dict/nltk directory (default: auto-detect)"),
) -> None:
    """Rebuild splits in memory from their manifests and check files and hashes byte for byte."""
    from zsl_scale.imagenet import HOP_SPLITS, built_split_names, load_hierarchy, validate_splits

    names = list(split) if split else built_split_names(root)
    hier = load_hierarchy(wordnet) if any(n in HOP_SPLITS for n in names) else None
    rows = validate_splits(root, names or None, counts, hier)
    table = Table("split", "status", "detail")
    for r in rows:
        table.add_row(r.name, r.status, r.detail)
    _console().print(table)
    bad = [r.name for r in rows if r.status == "mismatch"]
    if bad:
        raise DataError(f"{len(bad)} split(s) do not match a rebuild: {', '.join(bad)}")


@splits_app.command("compare")
def compare(
    split: str = typer.Argument(..., help="Built split name, e.g. 2H"),
    reference: Path = typer.Argument(..., help="wnid list to compare with (one per line; extra columns ignored)"),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    show_diff: int = typer.Option(5, "--show", help="Differing classes to list on each side"),
) -> None:
    """Overlap, precision, recall and Jaccard of a built split against a wnid list (e.g. a published one)."""
    from zsl_scale.imagenet import compare_lists, first_lemma, load_split, read_wnid_list

    c = compare_lists(load_split(split, root), read_wnid_list(reference))
    table = Table("built", "reference", "overlap", "precision", "recall", "jaccard")
    table.add_row(str(c.built), str(c.reference), str(c.overlap), f"{c.precision:.4f}", f"{c.recall:.4f}",
                  f"{c.jaccard:.4f}")
    _console().print(table)
    for label, items in (("only in built split", c.only_built), ("only in reference", c.only_reference)):
        if items and show_diff > 0:
            shown = ", ".join(f"{w} ({first_lemma(w)})" for w in items[:show_diff])
            print(f"{label}: {len(items)}: {shown}{' …' if len(items) > show_diff else ''}")


@splits_app.command("hops")
def hops(wordnet: Path = typer.Option(None, "--wordnet", help="WordNet dict/nltk directory")) -> None:
    """Print 2H/3H sizes under every hop definition (the evidence for the default)."""
    from zsl_scale.imagenet import hop_size_table, load_hierarchy

    table = Table("graph", "direction", "count", "2H", "3H")
    for row in hop_size_table(load_hierarchy(wordnet)):
        table.add_row(row["graph"], row["direction"], row["count"], str(row["2H"]), str(row["3H"]))
    _console().print(table)
    print("published: 1,549 / 7,860 (SynC/GCN lists); 1,509 / 7,678 (Xian et al., after filtering)")


def register(app: typer.Typer) -> None:
    """Mount ``zsl-scale splits …`` on the root app."""
    app.add_typer(splits_app, name="splits")
