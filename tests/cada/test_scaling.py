"""Min-max feature scaling for the streaming path: streamed statistics, one formula, refusal without stats."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from zsl_scale.cada.scaling import FeatureScaler, fit_feature_scaler, load_model_scaler, scaler_from_extra
from zsl_scale.core.errors import DataError
from zsl_scale.datasets.synthetic import write_synthetic
from zsl_scale.distributed.streaming import open_features


def test_streamed_statistics_equal_in_memory_min_max(tmp_path):
    feats, _ = write_synthetic(tmp_path, rows=700, dim=9, classes=4, shards=3, row_group_rows=64)
    source = open_features(feats)
    x = np.concatenate([np.stack(pq.read_table(p).column("feature").to_numpy(zero_copy_only=False))
                        for p in source.files]).astype(np.float32)
    scaler = fit_feature_scaler(source.files, source.dim, batch_rows=50)  # 50-row batches across 3 files
    np.testing.assert_array_equal(scaler.lo, x.min(0))
    span = x.max(0) - x.min(0)
    np.testing.assert_array_equal(scaler.scale, np.where(span > 0, span, 1))
    assert scaler.rows == 700
    y = scaler.transform(x)
    assert y.dtype == np.float32 and y.min() == 0.0 and y.max() == 1.0
    np.testing.assert_array_equal(y.min(0)[span > 0], 0.0)
    np.testing.assert_array_equal(y.max(0)[span > 0], 1.0)
    # numpy and torch paths compute the same float32 numbers
    np.testing.assert_array_equal(scaler.transform_torch(torch.from_numpy(x.astype(np.float16))).numpy(),
                                  scaler.transform(x.astype(np.float16)))


def test_constant_dimension_is_divided_by_one_and_test_values_are_not_clipped():
    scaler = FeatureScaler.from_min_max(np.array([0.0, 2.0]), np.array([4.0, 2.0]))
    np.testing.assert_array_equal(scaler.scale, [4.0, 1.0])
    np.testing.assert_array_equal(scaler.transform(np.array([[6.0, 3.0], [-2.0, 2.0]])), [[1.5, 1.0], [-0.5, 0.0]])


def test_round_trip_and_refusals(tmp_path):
    scaler = FeatureScaler(np.arange(3.0), np.array([1.0, 2.0, 4.0]), rows=5)
    back = scaler_from_extra(scaler.to_extra(), "x")
    np.testing.assert_array_equal(back.lo, scaler.lo)
    assert back.rows == 5 and back.fingerprint() == scaler.fingerprint()
    assert FeatureScaler(np.arange(3.0), np.ones(3)).fingerprint() != scaler.fingerprint()
    with pytest.raises(DataError, match=r"^model checkpoint m\.pt has no feature-scaler statistics"):
        scaler_from_extra({"history": []}, "model checkpoint m.pt")
    with pytest.raises(DataError, match="input feature is 4-d but the model's feature scaler was fit on 3-d"):
        scaler.transform(np.zeros((2, 4)))
    with pytest.raises(DataError, match="not finite positive"):
        FeatureScaler(np.zeros(2), np.array([1.0, 0.0]))
    torch.save({"model_config": {}, "state_dict": {}, "extra": {}}, tmp_path / "old.pt")
    with pytest.raises(DataError, match=r"old\.pt has no feature-scaler statistics"):
        load_model_scaler(tmp_path / "old.pt")


def test_nan_features_and_empty_input_are_refused(tmp_path):
    vals = np.array([[1.0, np.nan]], np.float32)
    table = pa.table({"feature": pa.FixedSizeListArray.from_arrays(pa.array(vals.ravel()), 2)})
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet contains NaN"):
        fit_feature_scaler([tmp_path / "bad.parquet"], 2)
    with pytest.raises(DataError, match="no training feature rows"):
        fit_feature_scaler([], 2)
