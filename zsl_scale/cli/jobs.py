"""``zsl-scale run JOB.yaml``: run a job's stages in order, skipping those already up to date."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def run(
    job_file: Path = typer.Argument(..., help="Job YAML (see jobs/*.yaml and docs/jobs.md)."),
    workdir: Path | None = typer.Option(None, "--workdir", help="Work folder instead of the job's `workdir` "
                                        "(relative to the current directory; the job's own is relative to the "
                                        "job file). A file is refused."),
    force: list[str] = typer.Option([], "--force", help="Re-run this stage (and downstream) even if up to date."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate the whole job (stage kinds and order, "
                                 "settings, @stage references, input paths; exit 2 if invalid) and print which "
                                 "stages would run or be skipped."),
) -> None:
    """Run JOB.yaml: splits → features → embeddings → (validation) → train → latents → score → (methods) → leaderboard.

    Each stage records its config hash (chained with its inputs' hashes) in <workdir>/<stage>/stage.json;
    a re-run skips stages whose hash and outputs are unchanged and re-runs changed ones and everything after.
    The whole job is validated before its first stage runs.
    """
    from zsl_scale.jobs import load_job, run_job

    job = load_job(job_file)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    outcome = run_job(job, job_file.resolve().parent, workdir=workdir, force=tuple(force), dry_run=dry_run,
                      log=log)  # run_job holds the work folder's lock
    ran = [p.name for p in outcome.plans if p.action != "skip"]
    typer.echo(f"job {job.name}: {len(outcome.plans) - len(ran)} stage(s) up to date, "
               f"{len(ran)} {'to run' if dry_run else 'ran'}" + (f": {', '.join(ran)}" if ran else ""))


def register(app: typer.Typer) -> None:
    """Mount ``run`` as a top-level command."""
    app.command("run")(run)
