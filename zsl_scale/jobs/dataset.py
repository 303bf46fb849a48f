"""The dataset a job runs on, behind one adapter: the few questions an ImageNet job and a small one answer differently.

Every built-in stage runner (:mod:`zsl_scale.jobs.stages`) is written once and asks its job's adapter
(made once per stage by :func:`zsl_scale.jobs.stages.dataset_of`, from
:attr:`zsl_scale.jobs.registry.JobSpec.small_dataset`) what depends on the data:

- **ImageNet-style job** (:class:`zsl_scale.jobs.imagenet_data.ImageNetData`): the label space is built from
  WordNet splits; the seen classes are the splits stage's ``train`` classes (held-out ones removed); the test
  images are the ``test_features`` stage's shards; one final softmax per job, its epochs fixed in the
  latents config; results per zero-shot split (S, U, H, top-k, per class, per WordNet group).
- **Small dataset** (an xlsa17 split: Flowers, CUB, …; :class:`zsl_scale.jobs.small.SmallData`), chosen by a
  ``benchmark`` key in the splits stage: the split's own ``trainval`` images train; the test images are the
  split's ``test_seen`` / ``test_unseen`` rows of the features stage; the validation stage chooses the
  epochs of two classifiers (GZSL over seen ∪ unseen, ZSL over unseen); results are GZSL S, U, H and ZSL.

What the adapter does not answer is the same code for both (the VAE trainer, latents, banks, classifiers,
shard filtering, the chunked scorer, the results builder).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_scale.core import ConfigError

StageContext = Any  # a zsl_scale.jobs.registry.StageContext (not imported: the registry's modules import this one)


@dataclass(frozen=True)
class Head:
    """One classifier the latents stage fits on sampled latents: its file, label space and schedule."""

    file: str
    seen: list[str]
    unseen: list[str]
    epochs: int
    bank_seed: int
    fit_seed: int


@dataclass(frozen=True)
class LatentPlan:
    """The latents stage's data-dependent answers: the seed, where the test images are, the classifiers."""

    seed: int
    test_features: Path
    classifier: Any  # a zsl_scale.core.ClassifierConfig
    heads: list[Head]
    mode: str = "fixed"


class JobDataset(ABC):
    """The questions whose answers depend on the kind of dataset a job runs on."""

    small: bool = False

    @abstractmethod
    def build_splits(self, ctx: StageContext) -> list[Path]:
        """The splits stage: the label space, seen / unseen classes (``classes.json``) and test images."""

    @abstractmethod
    def embed_classes(self, ctx: StageContext) -> list[Path]:
        """The embeddings stage: one vector per class (``embeddings.parquet``) and ``groups.tsv``."""

    def choose_epochs(self, ctx: StageContext) -> list[Path]:
        """The validation stage: the classifier epochs chosen on a validation split."""
        raise ConfigError(f"stage {ctx.spec.name!r}: a validation stage needs a benchmark splits stage "
                          "(splits config with 'benchmark')")

    @abstractmethod
    def train_rows(self, ctx: StageContext, settings: Any) -> tuple[str, set[str]]:
        """The training images: a shard column (``wnid`` or ``image_id``) and the values of it kept."""

    @abstractmethod
    def train_job(self, ctx: StageContext, settings: Any) -> dict[str, Any]:
        """The trainer's :class:`zsl_scale.distributed.DistJobConfig` mapping (without ``name`` and ``data``)."""

    @abstractmethod
    def latent_plan(self, ctx: StageContext, settings: Any, saved: dict[str, Any]) -> LatentPlan:
        """Seed, test images and classifiers of the latents stage (``saved``: the VAE checkpoint's extra)."""

    @abstractmethod
    def score(self, ctx: StageContext) -> list[Path]:
        """The score stage: this dataset's metrics of the latents stage's classifiers; the results files."""

    @abstractmethod
    def methods(self, ctx: StageContext) -> list[Path]:
        """The methods stage: the baselines, their hyper-parameters chosen as this dataset allows."""
