"""A ``.pt`` file a user hands us is data, never a program: a planted pickle runs nothing in any loader."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli
from zsl_scale.core import DataError, load_torch_file


class _Evil:
    """Unpickling this runs ``touch <marker>``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, marker: Path, zipped: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model_config": _Evil(marker), "state_dict": {}, "extra": {}, "wnids": ["a"], "weight": _Evil(marker)}
    if zipped:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path


def _checkpoint_folder(path: Path, marker: Path, zipped: bool) -> Path:
    """A dist run folder whose only checkpoint's ``state.pt`` is the planted pickle (meta.json is valid)."""
    from zsl_scale.distributed.state import FORMAT, FORMAT_VERSION

    ckpt = path.parent / "run" / "checkpoint_epoch_0001"
    _plant(ckpt / "state.pt", marker, zipped)
    (ckpt / "meta.json").write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "epoch": 1,
                                                "fingerprint": {}}))
    return ckpt


def _loaders() -> dict[str, Callable[[Path, Path, bool], None]]:
    from zsl_scale.cada import load_model, load_model_scaler
    from zsl_scale.distributed import load_final_model
    from zsl_scale.distributed.state import read_checkpoint_dir
    from zsl_scale.scoring.imagenet import load_classifier

    return {
        "load_torch_file": lambda p, m, z: load_torch_file(_plant(p, m, z), "file"),
        "load_model": lambda p, m, z: load_model(_plant(p, m, z)),
        "load_model_scaler": lambda p, m, z: load_model_scaler(_plant(p, m, z)),
        "load_classifier": lambda p, m, z: load_classifier(_plant(p, m, z)),
        "read_checkpoint_dir": lambda p, m, z: read_checkpoint_dir(_checkpoint_folder(p, m, z), {}),
        "load_final_model": lambda p, m, z: load_final_model(_checkpoint_folder(p, m, z).parent),
    }


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "raw-pickle"])
@pytest.mark.parametrize("loader", sorted(_loaders()))
def test_planted_pickle_runs_nothing_in_any_loader(loader, zipped, tmp_path):
    marker = tmp_path / "code-ran"
    refused = "holds Python objects, not plain data" if zipped else "not a plain-data torch file"
    with pytest.raises(DataError, match=refused) as exc:
        _loaders()[loader](tmp_path / "evil.pt", marker, zipped)
    assert not marker.exists()
    assert "\n" not in str(exc.value)


def test_planted_pickle_on_the_command_line_is_one_error_line(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    model = _plant(tmp_path / "vae.pt", marker, zipped=True)
    (tmp_path / "emb.parquet").write_bytes(b"")
    code = run_cli(["latents", "generate", "--model", str(model), "--out", str(tmp_path / "lat"),
                    "--class-embeddings", str(tmp_path / "emb.parquet"), "--per-class", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: model checkpoint")
    assert "not plain data" in err[0] and not marker.exists() and not (tmp_path / "lat").exists()


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"PK\x03\x04truncated"], ids=["random", "empty", "zip"])
def test_unreadable_model_file_is_one_line(content, tmp_path):
    from zsl_scale.cada import load_model

    (tmp_path / "m.pt").write_bytes(content)
    with pytest.raises(DataError, match=r"cannot load model checkpoint .*m\.pt") as exc:
        load_model(tmp_path / "m.pt")
    assert "\n" not in str(exc.value)


def test_files_this_version_writes_load_without_pickle(tmp_path):
    """Our own writers store plain data: model checkpoints, classifiers and dist states round-trip."""
    from zsl_scale.cada import CadaVae, load_model, paper_config, save_model
    from zsl_scale.distributed.state import rng_states, set_rng_states

    vae = CadaVae(paper_config(8, 4))
    save_model(tmp_path / "m.pt", vae, extra={"history": [{"loss": 1.0}], "seed": 3})
    back, cfg = load_model(tmp_path / "m.pt")
    assert cfg == vae.cfg
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), back.state_dict().values(), strict=True))
    import numpy as np

    np.random.seed(5)
    torch.save({"rng": rng_states()}, tmp_path / "s.pt")
    expected = np.random.rand(3)
    np.random.seed(0)
    set_rng_states(load_torch_file(tmp_path / "s.pt", "state")["rng"])
    assert np.array_equal(np.random.rand(3), expected)
