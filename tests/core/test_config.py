"""YAML + override resolution and its errors."""

from __future__ import annotations

import pytest

from zsl_scale.cli.small import DEMO_CONFIG, PAPER_CONFIG
from zsl_scale.core.config import TrainConfig, load_config
from zsl_scale.core.errors import ConfigError


def test_paper_config_equals_defaults() -> None:
    cfg = load_config(PAPER_CONFIG)
    assert cfg.train == TrainConfig()
    assert cfg.classifier.batch_size == 32 and cfg.classifier.betas == (0.5, 0.999)
    assert (cfg.classifier.seen_samples, cfg.classifier.unseen_samples) == (200, 400)


def test_demo_is_the_paper_schedule_shortened() -> None:
    demo = load_config(DEMO_CONFIG)
    assert demo.train == TrainConfig().shortened(demo.train.epochs)


def test_overrides_are_typed(tmp_path) -> None:
    cfg = load_config(PAPER_CONFIG, ["train.epochs=7", "eval.shots=[0, 5]", "train.variant=da", "seed=3"])
    assert cfg.train.epochs == 7 and cfg.eval.shots == [0, 5] and cfg.train.variant == "da" and cfg.seed == 3


@pytest.mark.parametrize(("override", "message"), [
    ("train.epochs", "must look like key.path=value"),
    ("train.epochs=-1", "train.epochs"),
    ("train.variant=foo", "train.variant"),
    ("train.nosuch=1", "train.nosuch"),
])
def test_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(PAPER_CONFIG, [override])


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
