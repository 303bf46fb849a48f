"""``zsl-scale imagenet evaluate`` (alias ``evaluate imagenet``): results per split from a job folder or paths.

Hand-made 2-d latents: classes sit on the unit circle and each image's latent is a direction, so every
prediction (and so S, U, H) is known in advance. The job's score stage on the same inputs must give the
same numbers: there is one scoring implementation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from tests.conftest import run_cli
from zsl_scale.core.io import atomic_write_json, atomic_write_parquet, sha256_file
from zsl_scale.results.schema import SCHEMA_VERSION, read_result

SEEN, HELD, SPLIT = ["n00000001", "n00000002", "n00000003"], ["n00000003"], ["n01494475"]
ANGLES = {"n00000001": 0.0, "n00000002": 1.5, "n00000003": 3.0, "n01494475": 4.5}
# n1 ×2 (one right, one → n2), n2 right, n3 ×2 (one right, one → n2), n4 right, n9 outside every space
IMAGES = [("n00000001", 0.0), ("n00000001", 1.5), ("n00000002", 1.5), ("n00000003", 3.0), ("n00000003", 1.6),
          ("n01494475", 4.5), ("n00000009", 0.0)]
GROUPS = "n00000001\tanimal\nn00000002\tanimal\nn00000003\tplant\nn01494475\tplant\n"


def _unit(a: float) -> list[float]:
    return [float(np.cos(a)), float(np.sin(a))]


def _latents(out: Path, dim: int = 2) -> Path:
    lat = np.array([_unit(a) + [0.0] * (dim - 2) for _, a in IMAGES], np.float32)
    table = pa.table({"image_id": [f"i{i}" for i in range(len(IMAGES))], "wnid": [w for w, _ in IMAGES],
                      "latent": pa.FixedSizeListArray.from_arrays(pa.array(lat.ravel()), dim)})
    atomic_write_parquet(out / "part-00000.parquet", table)
    atomic_write_json(out / "manifest.json", {"schema_version": 1, "kind": "latents", "complete": True,
                                              "shards": {"part-00000.parquet": {"rows": len(IMAGES)}}})
    return out


def _classifier(path: Path, wnids: list[str]) -> Path:
    weight = torch.tensor([_unit(ANGLES[w]) for w in wnids])
    torch.save({"weight": weight, "bias": torch.zeros(len(wnids)), "wnids": wnids, "history": [], "epochs": 3},
               path)
    return path


def _split_root(root: Path, name: str = "2H", wnids: list[str] = SPLIT) -> Path:
    folder = root / "imagenet21k" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.txt").write_text("".join(f"{w}\n" for w in wnids))
    atomic_write_json(folder / "manifest.json", {"name": name, "files": {
        f"{name}.txt": {"sha256": sha256_file(folder / f"{name}.txt")}}})
    return root


def _stage(folder: Path, kind: str) -> None:
    atomic_write_json(folder / "stage.json", {"name": folder.name, "kind": kind, "hash": f"h-{kind}",
                                              "config": {"k": kind}, "out_dir": "/moved/elsewhere"})


@pytest.fixture()
def job_dir(tmp_path: Path) -> Path:
    """A finished job's folder as `zsl-scale run` leaves it (only the files scoring reads)."""
    run = tmp_path / "job"
    splits = run / "splits"
    splits.mkdir(parents=True)
    _split_root(splits / "splits")
    doc = {"seen": SEEN, "train": [w for w in SEEN if w not in HELD], "heldout": HELD, "splits": {"2H": SPLIT}}
    atomic_write_json(splits / "classes.json", doc)
    (run / "embeddings").mkdir()
    (run / "embeddings" / "groups.tsv").write_text(GROUPS)
    _latents(run / "latents" / "test")
    _classifier(run / "latents" / "classifier.pt", list(ANGLES))
    for kind in ("splits", "embeddings", "latents"):
        _stage(run / kind, kind)
    return run


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _check_record(path: Path) -> None:
    rec = read_result(path)
    m = rec.metrics
    suh = (m.S, m.U, m.H)
    assert suh == pytest.approx((75.0, 75.0, 75.0))  # S: n1 1/2, n2 1/1; U: n3 1/2, n4 1/1
    assert m.per_class == pytest.approx({"n00000001": 50.0, "n00000002": 100.0, "n00000003": 50.0,
                                         "n01494475": 100.0})
    assert m.per_group == pytest.approx({"animal": 75.0, "plant": 75.0})
    assert m.top_k == pytest.approx({"top1": 75.0, "top2": 100.0})
    assert rec.schema_version == SCHEMA_VERSION and rec.split == "2H" and len(rec.config_sha256) == 64
    assert rec.extra["images"] == 6 and rec.extra["search_space"] == 4  # n9 is outside the space
    assert {"classifier", "latents:test", "split:2H"} <= set(rec.manifests)
    assert rec.provenance["git_commit"] is None or len(rec.provenance["git_commit"]) >= 40


def test_job_folder_gives_one_results_file_per_split(job_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "res"
    code = run_cli(["imagenet", "evaluate", "--run", str(job_dir), "--top-k", "1,2", "--device", "cpu",
                    "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    files = sorted(out.glob("*.json"))
    assert [f.name for f in files] == ["job__2H__CADA-VAE__gzsl__seed0.json"]
    _check_record(files[0])
    assert read_result(files[0]).config["stages"]["latents"]["hash"] == "h-latents"
    assert "2H: S 75.00  U 75.00  H 75.00" in capsys.readouterr().out


def test_alias_and_explicit_paths_give_the_same_numbers(job_dir: Path, tmp_path: Path, capsys) -> None:
    root = _split_root(tmp_path / "splits")
    (tmp_path / "seen.txt").write_text("\n".join(SEEN) + "\n")
    (tmp_path / "held.txt").write_text("n00000003  # held out of training\n")
    (tmp_path / "groups.tsv").write_text(GROUPS)
    code = run_cli(["evaluate", "imagenet", "--classifier", str(job_dir / "latents/classifier.pt"),
                    "--queries", str(job_dir / "latents/test"), "--splits", "2H", "--split-root", str(root),
                    "--seen", str(tmp_path / "seen.txt"), "--heldout", str(tmp_path / "held.txt"),
                    "--groups", str(tmp_path / "groups.tsv"), "--top-k", "1,2", "--device", "cpu",
                    "--dataset", "toy", "--out", str(tmp_path / "res")])
    assert code == 0, capsys.readouterr().err
    _check_record(tmp_path / "res" / "toy__2H__CADA-VAE__gzsl__seed0.json")


def test_same_numbers_as_the_jobs_score_stage(job_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from zsl_scale.jobs import JobSpec, register_stage, run_job
    from zsl_scale.jobs import registry as jobs

    monkeypatch.setattr(jobs, "_REGISTRY", {})
    for kind in ("splits", "embeddings", "latents"):  # "stages" that hand over the fixture's folders
        def copy(ctx, kind=kind):
            import shutil

            shutil.copytree(job_dir / kind, ctx.out_dir, dirs_exist_ok=True)
            (ctx.out_dir / "stage.json").unlink()
            return []
        register_stage(kind)(copy)
    spec = JobSpec.model_validate({"name": "job", "workdir": "w", "stages": [
        {"name": "splits"}, {"name": "embeddings"}, {"name": "latents"},
        {"name": "score", "config": {"top_k": [1, 2], "device": "cpu"}}]})
    run_job(spec, tmp_path, log=lambda s: None)
    staged = read_result(tmp_path / "w/score/results/job__2H__CADA-VAE__gzsl__seed0.json")
    assert run_cli(["imagenet", "evaluate", "--run", str(tmp_path / "w"), "--top-k", "1,2", "--device", "cpu"]) == 0
    ours = read_result(tmp_path / "w/evaluate/w__2H__CADA-VAE__gzsl__seed0.json")
    assert ours.metrics == staged.metrics


def test_bad_input_is_one_error_line_and_writes_nothing(job_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "res"
    base = ["imagenet", "evaluate", "--run", str(job_dir), "--device", "cpu", "--out", str(out)]
    bad_dim = _latents(tmp_path / "lat3", dim=3)
    cases = [
        (["--splits", "2X"], "unknown split '2X' (did you mean 2H?)"),
        (["--splits", "3H"], "split '3H' was not built"),
        (["--queries", str(bad_dim)], "query latents in " + str(bad_dim) + " are 3-d but the classifier expects "
                                      "dimension 2"),
        (["--top-k", "0"], "--top-k values must be"),
    ]
    for extra, message in cases:
        code = run_cli([*base, *extra])
        err = _errors(capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], (extra, err)
    # a class of the split without a classifier row (its embedding was missing when the classifier was trained)
    _classifier(job_dir / "latents" / "classifier.pt", SEEN)
    code = run_cli(base)
    err = _errors(capsys)
    assert code == 2 and len(err) == 1
    assert "class n01494475 of the search space of split 2H has no classifier weight or embedding" in err[0]
    # neither a job folder nor the explicit inputs
    code = run_cli(["imagenet", "evaluate", "--splits", "2H"])
    err = _errors(capsys)
    assert code == 2 and err == ["error: pass --run (a `zsl-scale run` work folder) or --classifier, --queries"]
    code = run_cli(["imagenet", "evaluate", "--run", str(tmp_path / "nothing")])
    assert code == 2 and "run folder not found" in _errors(capsys)[0]
    # a split list naming a class outside ImageNet-21K is refused, never scored
    stray = _split_root(tmp_path / "stray", wnids=["n00000004"])
    code = run_cli(["imagenet", "evaluate", "--classifier", str(job_dir / "latents" / "classifier.pt"),
                    "--queries", str(job_dir / "latents" / "test"), "--splits", "2H", "--split-root", str(stray),
                    "--device", "cpu", "--out", str(out)])
    err = _errors(capsys)
    assert code == 2 and len(err) == 1 and "lists 1 wnid(s) outside ImageNet-21K and the 1K, e.g. n00000004" in err[0]
    assert not out.exists()


def test_classifier_of_dist_classifier_is_read(tmp_path: Path) -> None:
    """``dist classifier`` files (and older ``state_dict`` ones) load as the same class table."""
    from torch import nn

    from zsl_scale.distributed.classifier import save_classifier
    from zsl_scale.scoring.imagenet import load_classifier

    lin = nn.Linear(2, 3)
    save_classifier(tmp_path / "a.pt", lin, ["a", "b", "c"], [], 4, mode="fixed")
    torch.save({"state_dict": lin.state_dict(), "wnids": ["a", "b", "c"]}, tmp_path / "b.pt")
    (a, ea), (b, eb) = load_classifier(tmp_path / "a.pt"), load_classifier(tmp_path / "b.pt")
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, lin.bias.detach().numpy())
    assert (ea, eb) == (4, None) and a.class_ids == ("a", "b", "c")
