"""Configuration of distributed jobs: the run's model and training settings plus how to scale them out.

A job file (e.g. ``jobs/imagenet-128d.yaml``) has the sections of a run config (``model``, ``train``,
``classifier``) plus ``scale`` (workers, devices, data streams, checkpoints, storage) and ``data``
(feature shards and class embeddings). Like every config: defaults ← YAML ← options ← ``key=value``
overrides, validated, and saved with the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from zsl_scale.core import ClassifierConfig, ModelSettings, TrainConfig, load_settings


class ScaleSettings(BaseModel):
    """How a run is spread over workers; none of it changes the numbers except ``streams``/``block_rows`` (and
    ``exact_sum``, which changes them at rounding level and makes them independent of ``workers``)."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: GPU workers when the cluster has GPUs
    cpus_per_worker: float = Field(default=1.0, gt=0)
    threads_per_worker: int = Field(default=1, ge=1)
    streams: int | None = Field(default=None, ge=1)  # virtual data streams; default = workers
    # one gradient per stream, summed in stream order on every worker (all-gather): weights bitwise identical
    # for any worker count (zsl_scale.distributed.exact); off: DDP's all-reduce, equal up to float rounding
    exact_sum: bool = False
    block_rows: int = Field(default=4096, ge=1)  # rows per read block (row-group slice)
    group_blocks: int = Field(default=8, ge=1)  # blocks shuffled together: the shuffle buffer, in blocks
    max_failures: int = Field(default=3, ge=-1)  # worker failures Ray Train recovers from per run
    keep_checkpoints: int = Field(default=2, ge=1)
    # A run saves a checkpoint at most this often, and always after the first and the last epoch it runs
    # (distributed.state.CheckpointClock; every runner): an ImageNet VAE's checkpoint is ~200 MB, and a Ray Train
    # report waits for the controller's next poll (``poll_interval_s``), so saving every short epoch costs more than
    # the epoch (60 Flowers-subset epochs at Ray's 2 s poll: 0.2 s of work each, 2 s each with a report). 0: every
    # epoch. Never changes the numbers (a resumed run recomputes the epochs since its checkpoint bit for bit).
    checkpoint_every_s: float = Field(default=10.0, ge=0)
    # how often Ray Train's controller polls its workers (it sets Ray's RAY_TRAIN_HEALTH_CHECK_INTERVAL_S for the
    # run; Ray's default is 2 s): a report waits for the next poll and a finished run is seen 2-3 polls late, so
    # 2 s cost every run ~5 s (a trivial 2-worker run on this machine: 4 s from the last report to fit's return
    # at 2 s, 0.5 s at 0.2 s). A hung poll is still only an error after Ray's 10 minutes. Never changes the numbers.
    poll_interval_s: float = Field(default=0.5, gt=0)
    storage_path: str = "runs/dist"
    address: str | None = None  # an existing Ray cluster; default: RAY_ADDRESS if set, else a local runtime
    wait_timeout: float | None = Field(default=None, gt=0)  # seconds to wait for a busy cluster's CPUs/GPUs


class DataPaths(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: str | None = None  # folder of parquet feature shards (docs/design.md §2)
    embeddings: str | None = None  # parquet: wnid + embedding vector


class DistJobConfig(BaseModel):
    """A distributed training job: the run's model/training settings plus how to scale it out."""

    model_config = ConfigDict(extra="forbid")

    name: str = "vae"
    seed: int = 0
    model: ModelSettings = Field(default_factory=lambda: ModelSettings(imagenet=True))
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(batch_size=128))
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    data: DataPaths = Field(default_factory=DataPaths)


def load_job_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DistJobConfig:
    """Defaults ← YAML file ← ``key.path=value`` overrides, validated as a :class:`DistJobConfig`."""
    return load_settings(DistJobConfig, path, overrides)
