"""The results file: round trip, canonical names, config hash, and malformed files as one-line errors."""

from __future__ import annotations

import json

import pytest

from zsl_scale.core import DataError, sha256_json
from zsl_scale.results import Metrics, ResultRecord, read_result, write_result


def _record(**kw) -> ResultRecord:
    base = {"dataset": "flo", "split": "standard", "method": "CADA-VAE", "seed": 3,
            "metrics": Metrics(S=48.7, U=49.5, H=49.1, zsl=50.0, per_class={"a": 40.0}),
            "config": {"train": {"epochs": 100}}, "selection": "validation"}
    return ResultRecord(**{**base, **kw})


def test_round_trip_and_canonical_name(tmp_path):
    rec = _record(split="xian2018/M500")
    path = write_result(rec, tmp_path)
    assert path.name == "flo__xian2018-M500__CADA-VAE__gzsl__seed3.json"
    back = read_result(path)
    assert back == rec and back.metrics.H == 49.1 and back.metrics.per_class == {"a": 40.0}
    assert back.config_sha256 == sha256_json({"train": {"epochs": 100}})
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temp file, nothing left over


def test_malformed_files_are_data_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="cannot read results file"):
        read_result(bad)
    doc = _record().model_dump(mode="json")
    doc["surprise"] = 1
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="invalid results file"):
        read_result(bad)
