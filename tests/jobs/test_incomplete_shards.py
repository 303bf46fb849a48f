"""Every stage that reads a shard folder refuses an incomplete one (no manifest, a listed shard missing, an
interrupted set) with one line, before it trains or writes anything: the folder is opened through the one
reader that checks its manifest (:func:`zsl_scale.core.shard_files`).

Each stage runs in this process on a job folder holding only what the stage reads before its shards (no
training): seconds for the whole file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from zsl_scale.core import PACKAGE_DATA, DataError, ShardStore, atomic_write_json, load_config, vector_array
from zsl_scale.jobs import JobSpec, StageContext, stage_runner
from zsl_scale.jobs import stages as _stages  # noqa: F401 - registers the built-in stage runners

WNIDS = ["n00000001", "n00000002", "n00000003"]
DAMAGES = ("no manifest", "shard missing", "interrupted")


def _shards(folder: Path, kind: str, column: str) -> Path:
    """A complete two-shard set of ``kind`` (one row per class), as the features / latents stages write it."""
    store = ShardStore(folder, kind, {"dim": 4}, 2).open()
    for i in range(2):
        ids = [f"{w}/{i}" for w in WNIDS]
        store.write_shard(i, pa.table({"image_id": ids, "wnid": WNIDS,
                                       column: vector_array(np.ones((3, 4), np.float32))}), {})
    store.finish({"dim": 4})
    return folder


def _damage(folder: Path, how: str) -> None:
    if how == "no manifest":
        (folder / "manifest.json").unlink()
    elif how == "shard missing":
        (folder / "part-00001.parquet").unlink()
    else:
        doc = json.loads((folder / "manifest.json").read_text())
        atomic_write_json(folder / "manifest.json", {**doc, "complete": False})


def _job_folder(root: Path, small: bool) -> dict[str, dict]:
    """Stage records of a finished job up to the stage under test (only the files read before the shards)."""
    recs = {}
    for name in ("splits", "features", "embeddings", "validation", "train", "latents"):
        (root / name).mkdir(parents=True)
        recs[name] = {"name": name, "kind": name, "out_dir": str(root / name), "hash": name,
                      "config": {"benchmark": "x"} if small and name == "splits" else {}}
    classes = {"seen": WNIDS[:2], "train": WNIDS[:2], "heldout": [], "splits": {"2H": WNIDS[2:]},
               "unseen": WNIDS[2:], "benchmark": "toy", "images": 6}
    atomic_write_json(root / "splits" / "classes.json", classes)
    atomic_write_json(root / "splits" / "splits.json", {"trainval": [f"{w}/0" for w in WNIDS[:2]]})
    (root / "embeddings" / "groups.tsv").write_text("".join(f"{w}\tthing\n" for w in WNIDS))
    paper = load_config(PACKAGE_DATA / "configs" / "paper.yaml")
    atomic_write_json(root / "validation" / "run_config.json", paper.model_dump(mode="json"))
    atomic_write_json(root / "validation" / "selection.json", {"gzsl_epochs": 1, "zsl_epochs": 1})
    good = _shards(root / "good", "features", "feature")
    torch.save({"extra": {"classifier": {}, "train_features": str(good)}}, root / "train" / "vae.pt")
    torch.save({"weight": torch.ones(3, 4), "bias": torch.zeros(3), "wnids": WNIDS, "epochs": 1},
               root / "latents" / "classifier.pt")
    _shards(root / "features" / "shards", "features", "feature")
    _shards(root / "latents" / "test", "latents", "latent")
    return recs


# (stage kind, its config, the shard folder it reads) per job kind
ESZSL = {"eszsl": {"gamma": 1, "lam": 1}}
IMAGENET = [("train", {}, "features/shards"), ("latents", {"epochs": 1}, "features/shards"),
            ("score", {}, "latents/test"), ("methods", {"methods": ESZSL}, "features/shards")]
SMALL = [("validation", {}, "features/shards"), ("train", {}, "features/shards"), ("latents", {}, "features/shards"),
         ("score", {}, "latents/test"), ("methods", {"methods": ["eszsl"]}, "features/shards")]


@pytest.mark.parametrize("small,kind,config,folder", [(False, *c) for c in IMAGENET] + [(True, *c) for c in SMALL],
                         ids=[f"imagenet-{c[0]}" for c in IMAGENET] + [f"small-{c[0]}" for c in SMALL])
@pytest.mark.parametrize("how", DAMAGES)
def test_stage_refuses_an_incomplete_shard_folder(tmp_path: Path, small: bool, kind: str, config: dict,
                                                  folder: str, how: str) -> None:
    recs = _job_folder(tmp_path / "w", small)
    _damage(tmp_path / "w" / folder, how)
    order = [*recs, "score", "methods"]
    upstream = {n: recs[n] for n in order[: order.index(kind)] if n in recs and (small or n != "validation")}
    stages = [{"name": n, "config": recs[n]["config"]} for n in upstream] + [{"name": kind, "config": config}]
    spec = JobSpec.model_validate({"name": "toy", "workdir": "w", "stages": stages})
    out = tmp_path / "w" / f"{kind}-run"
    ctx = StageContext(spec, spec.stages[-1], out, tmp_path, upstream)
    with pytest.raises(DataError, match=r"no (latents )?manifest\.json|missing or damaged|incomplete") as err:
        stage_runner(kind)(ctx)
    assert "\n" not in str(err.value) and str(tmp_path / "w" / folder) in str(err.value)
    assert not (out / "vae.pt").exists() and not (out / "results").exists()


def test_the_command_line_says_one_line_and_exits_2(tmp_path: Path) -> None:
    """``zsl-scale evaluate imagenet --run DIR`` (the score stage's inputs) on a job whose test latents are damaged."""
    recs = _job_folder(tmp_path / "w", small=False)
    for name in ("splits", "embeddings", "latents"):
        atomic_write_json(Path(recs[name]["out_dir"]) / "stage.json", recs[name])
    _damage(tmp_path / "w" / "latents" / "test", "shard missing")
    proc = subprocess.run([sys.executable, "-m", "zsl_scale", "evaluate", "imagenet", "--run", str(tmp_path / "w"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
