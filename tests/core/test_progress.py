"""Progress reporting: plain periodic lines (rate, ETA) when not on a terminal."""

from __future__ import annotations

import io

from zsl_scale.core.progress import ProgressReporter


def test_batch_mode_prints_rate_and_eta_lines():
    stream = io.StringIO()
    with ProgressReporter(10, "features", "images", interval_s=0.0, interactive=False, stream=stream) as p:
        p.advance(4)
        p.advance(6)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("features: 4/10 images (40.0%), ") and "images/s, ETA " in lines[0]
    assert lines[-1].startswith("features: 10/10 images (100.0%)") and lines[-1].endswith("done")


def test_interactive_mode_draws_a_bar_without_log_lines():
    stream = io.StringIO()
    with ProgressReporter(3, "latents", "shards", interactive=True, stream=stream) as p:
        p.advance(3)
    assert "latents" in stream.getvalue() and "shards/s" in stream.getvalue()
