"""The registry: names, aliases, did-you-mean, grid points; ConSE's embedding by hand; class tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsl_scale.core import ConfigError
from zsl_scale.methods import METHODS, Fitted, class_table, get_method, with_grid
from zsl_scale.methods.conse import conse_embed


def test_every_issue_method_is_registered_and_aliases_resolve() -> None:
    assert {m.display for m in METHODS.values()} == {"CADA-VAE", "ESZSL", "DeViSE", "SJE", "ALE", "ConSE",
                                                     "f-CLSWGAN"}
    assert get_method("f-CLSWGAN").name == "fclswgan" and get_method("CADA-VAE").protocol == "cada"


def test_unknown_method_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'eszsl'"):
        get_method("eszl")
    with pytest.raises(ConfigError, match="known: cada, eszsl"):
        get_method("zzzzzz")


def test_grid_points_cover_the_product_in_order() -> None:
    pts = get_method("eszsl").points()
    assert len(pts) == 49 and pts[0] == {"gamma": 1e-3, "lam": 1e-3} and pts[-1] == {"gamma": 1e3, "lam": 1e3}


def test_grid_override_replaces_values_and_refuses_unknown_keys() -> None:
    spec = with_grid(get_method("fclswgan"), {"hidden": 4096, "gan_steps": [7000], "gan_lr": [1e-4, 2e-4]})
    assert spec.grid["hidden"] == [4096] and spec.grid["n_unseen"] == get_method("fclswgan").grid["n_unseen"]
    assert len(spec.points()) == 2 and spec.points()[1]["gan_lr"] == 2e-4
    assert get_method("fclswgan").grid["hidden"] == [1024]  # the registry entry is unchanged
    with pytest.raises(ConfigError, match="did you mean 'gan_steps'"):
        with_grid(get_method("fclswgan"), {"gan_step": 7000})
    with pytest.raises(ConfigError, match="at least one value"):
        with_grid(get_method("eszsl"), {"lam": []})


def test_conse_embedding_by_hand() -> None:
    seen = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    probs = torch.tensor([[0.6, 0.3, 0.1]])
    # T = 2: (0.6·[1, 0] + 0.3·[0, 1]) / 0.9 = [2/3, 1/3] → unit norm [2, 1]/√5
    torch.testing.assert_close(conse_embed(probs, seen, 2), torch.tensor([[2.0, 1.0]]) / 5**0.5)
    torch.testing.assert_close(conse_embed(probs, seen, 1), torch.tensor([[1.0, 0.0]]))


def test_class_table_has_the_fitted_rows_in_the_requested_order() -> None:
    emb = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    fitted = Fitted(embed=lambda q: q, weights=lambda c: (emb[torch.as_tensor(c)], torch.as_tensor(c).float()))
    table = class_table(fitted, np.array([2, 0]), ["c2", "c0"])
    assert table.class_ids == ("c2", "c0") and table.weight.tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert table.bias.tolist() == [2.0, 0.0]
