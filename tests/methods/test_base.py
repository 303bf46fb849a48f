"""method → class table → the one chunked scorer (the ImageNet path) ranks exactly as the method itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.protocol.test_methods import FAST_GRIDS, planted
from zsl_scale.methods import METHODS, class_table, get_method, predict, queries
from zsl_scale.methods.base import TrainData
from zsl_scale.scoring.score import Scorer, gzsl_search_space


@pytest.mark.parametrize("name", [n for n in METHODS if METHODS[n].protocol == "generic"])
def test_class_table_through_the_chunked_scorer_matches_the_method(name: str) -> None:
    torch.set_num_threads(1)
    bench = planted()
    rows = bench.splits["trainval"]
    x = torch.as_tensor(bench.features[rows] / bench.features.max())
    data = TrainData(x, torch.as_tensor(bench.labels[rows]), torch.as_tensor(bench.class_embeddings),
                     unseen=np.arange(9, 12))
    spec = get_method(name)
    hp = dataclasses.replace(spec, grid=FAST_GRIDS.get(name, spec.grid)).points()[0]
    if "epochs" in hp:
        hp["epochs"] = 2
    fitted = spec.make(data, 0).fit(hp)
    # A GZSL search space as the ImageNet scorer orders it: seen class ids first, then the split's own.
    ids = gzsl_search_space([f"c{i}" for i in range(9)], [f"c{i}" for i in range(9, 12)])
    classes = np.array([int(c[1:]) for c in ids])
    table = class_table(fitted, classes, ids)
    test = torch.as_tensor(bench.features[bench.splits["test_unseen"]] / bench.features.max())
    got = classes[Scorer(table, k=1, device="cpu").score(queries(fitted, test)).indices[:, 0]]
    assert (got == predict(fitted, test, classes)).mean() == 1.0
