"""``zsl-scale splits build | show | validate | compare | hops``: the ImageNet-21K zero-shot splits."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from zsl_scale.core import DataError

splits_app = typer.Typer(help="ImageNet-21K zero-shot splits: ours (2H, 3H, M*/L*, All, from WordNet) and Xian et "
                         "al.'s (xian2018/<split>).", no_args_is_help=True)

_ROOT_HELP = "Splits root (default: $ZSL_SCALE_SPLITS, else <checkout>/splits, else ./splits)"
_COUNTS_HELP = "Per-class image counts (wnid,count as CSV/TSV or parquet), needed for M*/L* splits"
_XIAN_HELP = "Folder of Xian et al.'s lists (default: the committed splits/xian2018, else the shared data)"
_WORDNET_HELP = "WordNet dict/nltk directory (default: auto-detect)"
_UNIVERSE_HELP = ("Restrict the splits to the classes a copy has: fall11 (default, no restriction), goog21k, in21k-p, "
                  "in21k-p-w21, in12k, counts:<`features count` table> or features:<feature folder> (docs/splits.md)")


def _expand(names: list[str], root: Path | None = None, built_only: bool = False) -> list[str]:
    """Split names as typed; a set name (``xian2018``, ``xian2018@in12k``) stands for its splits (the built ones
    if ``built_only``)."""
    from zsl_scale.imagenet import SPLIT_SETS, built_split_names

    built = set(built_split_names(root)) if built_only else None
    out = []
    for n in names:
        dataset, sep, uid = n.partition("@")
        if dataset not in SPLIT_SETS:
            out.append(n)
            continue
        out += [m + sep + uid for m in SPLIT_SETS[dataset] if built is None or m + sep + uid in built]
    return out


def _console(width: int | None = None) -> Console:
    """Rich console; ``width`` keeps wide tables readable when stdout is a file or pipe (80 columns)."""
    return Console(highlight=False, soft_wrap=True, width=width)


@splits_app.command("build")
def build(
    split: list[str] = typer.Option(None, "--split", "-s", help="Split(s) to build, e.g. 2H or xian2018/M500, or a "
                                    "whole set (xian2018) (default: 2H, 3H, All; plus M*/L* when --counts is given)"),
    counts: Path = typer.Option(None, "--counts", help=_COUNTS_HELP),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    hop_graph: str = typer.Option("fall11", help="fall11, wordnet, imagenet or imagenet-edges (see docs/splits.md)"),
    hop_direction: str = typer.Option("tree", help="tree, undirected or directed"),
    hop_count: str = typer.Option("synsets", help="Count hops as synsets on the path (k hops = k-1 edges) or edges"),
    wordnet: Path = typer.Option(None, "--wordnet", help=_WORDNET_HELP),
    xian_source: Path = typer.Option(None, "--xian-source", help=_XIAN_HELP),
    universe: str = typer.Option(None, "--universe", "-u", help=_UNIVERSE_HELP),
) -> None:
    """Build splits and write <root>/<set>/<split>/{<split>.txt, manifest.json}.

    With --universe U, each split is restricted to the classes of U and written under <root>/<set>@<U>/ with a
    manifest naming the source split (and its sha256), U, the kept and dropped classes and the seen set (1K ∩ U).
    Every input is checked before anything is written: bad input leaves existing splits untouched.
    """
    import json

    from zsl_scale.imagenet import COUNT_SPLITS, STRUCTURAL_SPLITS, HopDefinition, build_splits

    names = _expand(list(split)) if split else [*STRUCTURAL_SPLITS, *(COUNT_SPLITS if counts else ())]
    hops = HopDefinition(graph=hop_graph, direction=hop_direction, count=hop_count)
    dirs = build_splits(names, root=root, counts_path=counts, hops=hops, wordnet=wordnet, xian_source=xian_source,
                        universe=universe)
    for d in dirs:
        m = json.loads((d / "manifest.json").read_text())
        name = (f"{m['dataset'].split('@')[0]}/" if not m["dataset"].startswith("imagenet21k") else "") + m["split"]
        r = m.get("restriction")
        if r is None:
            print(f"{name}: {m['num_classes']} classes -> {d}")
            continue
        print(f"{name}@{r['universe']['id']}: {r['kept']} of {r['kept'] + r['dropped']} classes kept ({r['dropped']} "
              f"dropped), seen {r['seen']['num_classes']} of 1,000 -> {d}")


@splits_app.command("show")
def show(
    split: list[str] = typer.Argument(None, help="Split(s) or set(s) to show (default: every built split)"),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    sample: int = typer.Option(0, help="Classes to list per split (0: none)"),
) -> None:
    """Print a table of the built splits of both sets: set, name, classes, definition (and a sample)."""
    from zsl_scale.imagenet import built_split_names, first_lemma, load_manifest, load_split, split_set

    names = _expand(list(split), root, built_only=True) if split else built_split_names(root)
    if not names:
        raise DataError("no built splits found (run `zsl-scale splits build`)")
    table = Table("set", "split", "classes", "definition", *(["sample"] if sample > 0 else []))
    for name in names:
        wnids = load_split(name, root)
        manifest = load_manifest(name, root)
        row = [split_set(name)[0], name, str(len(wnids)), manifest["definition"]]
        if sample > 0:
            picked = wnids[:: max(1, len(wnids) // sample)][:sample]
            row.append("\n".join(f"{w} {first_lemma(w)}" for w in picked))
        table.add_row(*row)
    _console(width=160).print(table)


@splits_app.command("validate")
def validate(
    split: list[str] = typer.Argument(None, help="Split(s) or set(s) to check (default: every built split)"),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    counts: Path = typer.Option(None, "--counts", help=_COUNTS_HELP + " (to rebuild M*/L* too)"),
    wordnet: Path = typer.Option(None, "--wordnet", help=_WORDNET_HELP),
    xian_source: Path = typer.Option(None, "--xian-source", help=_XIAN_HELP),
) -> None:
    """Rebuild splits in memory from their manifests and check files and hashes byte for byte."""
    from zsl_scale.imagenet import HOP_SPLITS, built_split_names, load_hierarchy, validate_splits

    names = _expand(list(split), root, built_only=True) if split else built_split_names(root)
    hier = load_hierarchy(wordnet) if any(n in HOP_SPLITS for n in names) else None
    rows = validate_splits(root, names or None, counts, hier, xian_source)
    table = Table("split", "status", "detail")
    for r in rows:
        table.add_row(r.name, r.status, r.detail)
    _console().print(table)
    bad = [r.name for r in rows if r.status == "mismatch"]
    if bad:
        raise DataError(f"{len(bad)} split(s) do not match a rebuild: {', '.join(bad)}")


@splits_app.command("compare")
def compare(
    split: str = typer.Argument(None, help="Built split name, e.g. 2H (omit with --set)"),
    reference: str = typer.Argument(None, help="A split name (xian2018/2H) or a wnid list file (one per line; "
                                    "extra columns ignored)"),
    reference_set: str = typer.Option(None, "--set", help="Compare every split with this set's (xian2018)"),
    within: str = typer.Option("All", help="With --set: also restrict ours to the reference set's split of this name"),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    show_diff: int = typer.Option(5, "--show", help="Differing classes to list on each side"),
    explain: bool = typer.Option(False, "--explain", help="Give every differing class's fall-2011 path and its "
                                 "tree distance to the nearest 1K class (loads WordNet)"),
    wordnet: Path = typer.Option(None, "--wordnet", help=_WORDNET_HELP),
) -> None:
    """Overlap, precision, recall and Jaccard of our splits against a reference split, list or whole set."""
    from zsl_scale.imagenet import compare_lists, compare_set, load_split

    if reference_set is not None:
        if split is not None:
            raise DataError("give either SPLIT [REFERENCE] or --set, not both")
        rows = [(r.ours + (f" ∩ {r.within}" if r.within else ""), r.reference, r.comparison)
                for r in compare_set(reference_set, root, within)]
    else:
        if split is None or reference is None:
            raise DataError("give SPLIT and REFERENCE (a split name or a wnid list file), or --set xian2018")
        rows = [(split, reference, compare_lists(load_split(split, root), _reference_list(reference, root)))]
    table = Table("ours", "reference", "classes", "ref. classes", "overlap", "precision", "recall", "jaccard")
    for ours, ref, c in rows:
        table.add_row(ours, ref, str(c.built), str(c.reference), str(c.overlap), f"{c.precision:.4f}",
                      f"{c.recall:.4f}", f"{c.jaccard:.4f}")
    _console(width=130).print(table)
    for ours, ref, c in rows:
        if reference_set is not None and " ∩ " not in ours:
            continue  # residuals only for the comparable (restricted) rows of a set
        for label, items in ((f"only in {ours}", c.only_built), (f"only in {ref}", c.only_reference)):
            if items and (show_diff > 0 or explain):
                _print_residuals(label, items, show_diff, explain, wordnet)


def _reference_list(reference: str, root: Path | None) -> list[str]:
    """A reference given as a split name (``xian2018/2H``) or as a wnid list file."""
    from zsl_scale.imagenet import ALL_SPLIT_NAMES, check_split_name, load_split, read_wnid_list

    if reference in ALL_SPLIT_NAMES or "@" in reference or not Path(reference).exists():
        return load_split(check_split_name(reference), root)  # unknown → "did you mean"
    return read_wnid_list(reference)


def _print_residuals(label: str, items: list[str], show: int, explain: bool, wordnet: Path | None) -> None:
    from zsl_scale.imagenet import explain as explain_classes
    from zsl_scale.imagenet import first_lemma, load_hierarchy

    if not explain:
        shown = ", ".join(f"{w} ({first_lemma(w)})" for w in items[:show])
        print(f"{label}: {len(items)}: {shown}{' …' if len(items) > show else ''}")
        return
    print(f"{label}: {len(items)}")
    for r in explain_classes(load_hierarchy(wordnet), items):
        near = f"{r.distance} edge(s) from 1K {r.nearest_seen}" if r.nearest_seen else "no 1K class within 4 edges"
        print(f"  {r.wnid} {r.name}: {near}; path {' > '.join(r.path)}")


@splits_app.command("hops")
def hops(
    wordnet: Path = typer.Option(None, "--wordnet", help=_WORDNET_HELP),
    xian_source: Path = typer.Option(None, "--xian-source", help=_XIAN_HELP),
) -> None:
    """Print 2H/3H sizes under every hop definition, and their Jaccard with Xian et al.'s lists."""
    from zsl_scale.imagenet import hop_size_table, load_hierarchy, read_xian_list

    ref = {n: set(read_xian_list(n, xian_source)[0]) for n in ("2H", "3H", "All")}
    table = Table("graph", "direction", "count", "2H", "3H", "2H J", "3H J")
    for row in hop_size_table(load_hierarchy(wordnet), ref):
        table.add_row(row["graph"], row["direction"], row["count"], str(row["2H"]), str(row["3H"]),
                      f"{row['2H J']:.4f}", f"{row['3H J']:.4f}")
    _console().print(table)
    print("J: Jaccard of ours ∩ xian2018/All with xian2018/2H, 3H. Published: 1,549 / 7,860 (Frome, Norouzi, "
          "Changpinyo); 1,509 / 7,678 (Xian et al., the same lists ∩ their All)")


def register(app: typer.Typer) -> None:
    """Mount ``zsl-scale splits …`` on the root app."""
    app.add_typer(splits_app, name="splits")
