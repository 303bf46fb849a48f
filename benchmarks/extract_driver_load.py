"""What feature extraction costs the driver: peak RSS growth and bytes received, vs the feature bytes written.

Runs on a real 2-worker-node Ray cluster started here (``ray.cluster_utils.Cluster``: a head with no
CPUs, so every actor runs on a worker node, and two worker nodes of 1 CPU each; free ports, Ray's temp
folder under TMPDIR). This process is the driver: it joins the cluster by address, as ``RAY_ADDRESS``
makes the CLI do, and calls ``extract_features`` like ``zsl-scale features extract`` does.

* A warm-up extraction of 8 images (it loads Ray Data, pyarrow, the actor pool machinery), then a
  reference extraction of the same 8 images, measured: what one run of the pipeline costs the driver
  whatever its size (Ray Data's executor, threads, stats: 3.7-6 MB measured here).
* Then the measured extraction. Peak RSS growth = Linux's peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs`` just before) minus the RSS at that moment; what counts against the data is
  the growth beyond the 8-image reference run. Bytes received = the shard records the driver took from
  the actors (``ExtractSummary.received_bytes``: the only data the actors send it). Feature bytes
  written = the size of the parquet shards on disk. All three numbers are printed.

Before the workers wrote their own shards (issue 23, item 7) every feature array went through the
driver: bytes received were ≥ the raw feature bytes (ratio ≥ 1).

    python benchmarks/extract_driver_load.py                 # 5,000 Flowers-102 images (jpg64.tar, read in place)
    python benchmarks/extract_driver_load.py --images DIR --repeat 5   # e.g. the 1,000 ImageNet samples, each 5×

The last line is ``ratio: <max(peak RSS growth beyond the 8-image run, bytes received) ÷ feature bytes
written>`` (the issue's acceptance: ≤ 0.05).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

from zsl_scale.core.paths import shared_data_dir
from zsl_scale.features.backbones import get_backbone
from zsl_scale.features.extract import ExtractOptions, extract_features
from zsl_scale.features.inputs import list_images


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark of this process; returns the RSS now (bytes)."""
    Path("/proc/self/clear_refs").write_text("5\n")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """Peak RSS (bytes) since the last :func:`reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _inputs(tmp: Path, images: Path | None, limit: int, repeat: int) -> Path:
    """A list file: the first ``limit`` Flowers images, or ``images`` (a tree) with every image ``repeat`` times."""
    if images is None:
        from zsl_scale.features import write_image_list, xlsa17_images

        root = shared_data_dir() / "flo"
        full = write_image_list(tmp / "flowers.tsv", root / "jpg64.tar", xlsa17_images(root), "flower")
        lines = full.read_text().splitlines(keepends=True)[: limit + 1]  # the header line, then `limit` images
        (tmp / "input.tsv").write_text("".join(lines))
        return tmp / "input.tsv"
    _, refs = list_images(images)
    root = tmp / "tree"
    for k in range(repeat):  # distinct names (so distinct image ids), same class folders
        for ref in refs[: limit // repeat if limit else None]:
            dest = root / ref.wnid / f"{Path(ref.path).stem}_r{k}{Path(ref.path).suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(ref.path)
    return root


def _first(src: Path, n: int, dest: Path) -> Path:
    """A list file of the first ``n`` images of ``src`` (the warm-up's input)."""
    if src.is_file():
        dest.write_text("".join(src.read_text().splitlines(keepends=True)[: n + 1]))  # header + n images
    else:
        dest.write_text("".join(f"{r.path}\t{r.wnid}\n" for r in list_images(src)[1][:n]))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=None, help="an image tree instead of Flowers-102")
    ap.add_argument("--repeat", type=int, default=1, help="list each image of --images this many times")
    ap.add_argument("--limit", type=int, default=5000, help="images in the measured extraction")
    ap.add_argument("--dtype", default="float32", choices=["float16", "float32"])
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")
    with tempfile.TemporaryDirectory(prefix="zdl", dir=os.environ.get("TMPDIR")) as tmp_str:
        tmp = Path(tmp_str)
        common = {"object_store_memory": 150 * 1024 * 1024, "temp_dir": str(tmp / "ray")}
        head = {**common, "num_cpus": 0, "gcs_server_port": _free_port(), "include_dashboard": False}
        # Cluster writes its address to <system temp>/ray/ray_current_cluster whatever temp_dir says; that folder
        # is missing under a fresh TMPDIR (a FileNotFoundError traceback before this line)
        (Path(tempfile.gettempdir()) / "ray").mkdir(exist_ok=True)
        cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            for _ in range(2):
                cluster.add_node(**common, num_cpus=1, min_worker_port=0, max_worker_port=0)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
            src = _inputs(tmp, args.images, args.limit, args.repeat)
            opts = ExtractOptions(dtype=args.dtype, batch_size=args.batch_size, shard_size=args.shard_size,
                                  workers=2, progress_interval_s=1e9)
            warm = ExtractOptions(dtype=args.dtype, batch_size=4, shard_size=4, workers=2, progress_interval_s=1e9)
            first8 = _first(src, 8, tmp / "warm.tsv")
            extract_features(first8, tmp / "warm", warm)  # loads what every run needs; not measured
            rss_ref = reset_peak_rss()
            extract_features(first8, tmp / "ref", warm)
            fixed = max(0, peak_rss() - rss_ref)
            rss0 = reset_peak_rss()
            t0 = time.perf_counter()
            summary = extract_features(src, tmp / "out", opts)
            seconds = time.perf_counter() - t0
            peak = peak_rss()
        finally:
            ray.shutdown()
            cluster.shutdown()
            # the address record Cluster leaves in Ray's temp folder would point the next ray.init() at it
            (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").unlink(missing_ok=True)
        written = sum(p.stat().st_size for p in (tmp / "out").glob("part-*.parquet"))
    raw = summary.rows * get_backbone(opts.backbone).dim * (4 if args.dtype == "float32" else 2)
    growth = max(0, peak - rss0)
    scaled = max(0, growth - fixed)
    print(f"cluster: head (0 CPUs, the driver's node) + 2 worker nodes × 1 CPU; cpus={os.cpu_count()}")
    print(f"images={summary.images} rows={summary.rows} shards={summary.num_shards} dtype={args.dtype} "
          f"seconds={seconds:.1f} ({summary.images / seconds:.1f} images/s)")
    print(f"feature bytes written (parquet shards): {written:,} (raw {raw:,})")
    print(f"driver peak RSS growth: 8-image run {fixed:,} bytes (Ray Data's per-run cost); "
          f"this run {growth:,} bytes (RSS {rss0 / 2**20:.1f} -> peak {peak / 2**20:.1f} MiB)")
    print(f"driver peak RSS growth beyond the 8-image run: {scaled:,} bytes ({scaled / written:.4f} of written)")
    print(f"driver bytes received (shard records): {summary.received_bytes:,} ({summary.received_bytes / written:.5f} "
          "of written)")
    print(f"ratio: {max(scaled, summary.received_bytes) / written:.4f}")


if __name__ == "__main__":
    main()
