"""Tables of the clean-protocol study (see clean_protocol.py): what each selection rule does to
validation, then to test.

    python docs/studies/clean_protocol_report.py /tmp/study

For every σ form and setting: each validation fold's own best epoch and its peak (fold difficulty), then
for each rule — the mean curve over the first K folds (K = 1…4), and the same with a 3-epoch moving
average — the chosen epoch, the validation H it reaches and, last, the test H at that epoch (read off the
test curve, which chooses nothing). The test curve's own best epoch is printed as a diagnosis only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def load(run: Path) -> tuple[list[dict], dict]:
    folds = sorted(run.glob("val*.json"))
    return [json.loads(p.read_text()) for p in folds], json.loads((run / "test.json").read_text())


def smooth(curve: np.ndarray, width: int = 3) -> np.ndarray:
    """Centred moving average; the ends average over what exists (no padding bias)."""
    out = np.empty_like(curve)
    for i in range(len(curve)):
        lo, hi = max(0, i - width // 2), min(len(curve), i + width // 2 + 1)
        out[i] = curve[lo:hi].mean()
    return out


def rules(folds: list[dict], shots: str, key: str) -> dict[str, np.ndarray]:
    """Candidate selection curves: mean over the first K folds, smoothed, and (for H) H of the pooled S, U."""
    curves = [np.asarray(f["curves"][shots][key]) for f in folds]
    out = {}
    for k in range(1, len(curves) + 1):
        name = f"{k} fold{'s' if k > 1 else ''}"
        mean = np.mean(curves[:k], axis=0)
        out[name] = mean
        out[f"{name}, smoothed"] = smooth(mean)
        if key == "H" and k > 1:
            s = np.mean([f["curves"][shots]["S"] for f in folds[:k]], axis=0)
            u = np.mean([f["curves"][shots]["U"] for f in folds[:k]], axis=0)
            out[f"{name}, H of mean S and U"] = 2 * s * u / np.maximum(s + u, 1e-12)
    return out


def report(root: Path) -> str:
    lines = []
    for run in sorted(p for p in root.iterdir() if (p / "test.json").exists()):
        folds, test = load(run)
        lines.append(f"\n## {run.name}: {len(folds)} validation folds; seen/unseen classes per phase: "
                     + ", ".join(f"{f['n_seen']}/{f['n_unseen']}" for f in folds)
                     + f"; test {test['n_seen']}/{test['n_unseen']}")
        for shots in test["curves"]:
            for key in (["H", "zsl"] if shots == "0" else ["H"]):
                name = ("GZSL" if key == "H" else "ZSL") if shots == "0" else f"GFSL {shots}"
                tc = np.asarray(test["curves"][shots][key])
                per_fold = ", ".join(f"{int(np.argmax(c)) + 1} ({100 * max(c):.1f})"
                                     for c in (f["curves"][shots][key] for f in folds))
                lines.append(f"\n### {name} — each fold's best epoch (peak): {per_fold}")
                lines.append("| rule | epoch | validation | test |\n|---|---:|---:|---:|")
                for rule, curve in rules(folds, shots, key).items():
                    e = int(np.argmax(curve))
                    lines.append(f"| {rule} | {e + 1} | {100 * curve[e]:.1f} | {100 * tc[e]:.1f} |")
                lines.append(f"| (diagnosis: the test curve's own best) | {int(np.argmax(tc)) + 1} | | "
                             f"{100 * tc.max():.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
