"""Split build time (2H, 3H, All) with a cold WordNet graph vs a cached one.

Each measurement is the full command ``zsl-scale splits build`` in a fresh process (Python start-up,
imports, graph load, BFS, writing and hashing the files), so the numbers are what a user waits for.
Cold: an empty cache directory, so the noun graph is extracted from WordNet through nltk (and a
Debian dict dir is copied under the cache first). Cached: the same command again. The acceptance
target is < 60 s cached (and the graph load alone < 2 s, printed separately).

    .venv/bin/python benchmarks/splits_build.py [--repeat 3]

The last line is ``ratio: <cold seconds ÷ cached seconds>`` (the speed-up the graph cache buys).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-c", "from zsl_scale.cli import main; main()"]
LOAD = [sys.executable, "-c", "import time; t=time.perf_counter(); "
        "from zsl_scale.imagenet.hierarchy import load_hierarchy; "
        "h=load_hierarchy(); print(f'{time.perf_counter()-t:.3f}')"]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return seconds, proc.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="cached-graph runs (the median is reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ZSL_SCALE_CACHE": str(Path(tmp) / "cache")}
        build = [*CLI, "splits", "build", "--root", str(Path(tmp) / "splits")]
        cold, _ = timed(build, env)
        cached = sorted(timed(build, env)[0] for _ in range(args.repeat))[args.repeat // 2]
        load_in_process = sorted(float(timed(LOAD, env)[1]) for _ in range(args.repeat))[args.repeat // 2]
    print(f"{'measurement':<44} {'seconds':>8}")
    print(f"{'splits build, cold graph (nltk extraction)':<44} {cold:>8.2f}")
    print(f"{'splits build, cached graph (median)':<44} {cached:>8.2f}")
    print(f"{'load_hierarchy() from cache, in process':<44} {load_in_process:>8.3f}")
    print(f"ratio: {cold / cached:.2f}")


if __name__ == "__main__":
    main()
