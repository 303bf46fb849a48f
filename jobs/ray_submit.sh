#!/usr/bin/env bash
# Submit a zsl-scale job to a running Ray cluster through its dashboard (job submission) address.
#   RAY_ADDRESS=http://head-node:8265 jobs/ray_submit.sh jobs/imagenet21k.yaml --workdir /shared/runs/in21k
# Needs (docs/distributed.md, "Running on an existing cluster"):
#   - zsl-scale installed on every node (the Dockerfile's image, or one shared venv), same Ray version;
#   - --workdir on a filesystem every node sees: the job file travels in a temporary upload, so its own
#     relative workdir would land in Ray's scratch space of one node and be lost;
#   - data the job names (shared:..., paths) on that filesystem too; ZSL_SCALE_SHARED_DATA is passed on
#     when set here.
# Ray gives the job's driver the cluster's address (RAY_ADDRESS=<head>:<gcs port>); every Ray stage joins it.
set -euo pipefail
cd "$(dirname "$0")/.."
JOB_FILE=${1:-jobs/imagenet21k.yaml}
shift || true
case " $* " in
  *" --workdir "*|*" --workdir="*) ;;
  *) echo "error: give --workdir DIR on a filesystem every node sees (the job file travels in a temporary upload)" >&2
     exit 2 ;;
esac
: "${RAY_ADDRESS:=http://127.0.0.1:8265}"
export RAY_ADDRESS
SUBMISSION_ID=${SUBMISSION_ID:-zsl-$(basename "$JOB_FILE" .yaml)-$(date +%Y%m%d-%H%M%S)}
ENV_VARS="\"RAY_AUTH_MODE\": \"disabled\", \"HF_HUB_OFFLINE\": \"1\""
if [[ -n "${ZSL_SCALE_SHARED_DATA:-}" ]]; then
  ENV_VARS="$ENV_VARS, \"ZSL_SCALE_SHARED_DATA\": \"$ZSL_SCALE_SHARED_DATA\""
fi
exec ray job submit \
  --submission-id "$SUBMISSION_ID" \
  --working-dir "$(dirname "$JOB_FILE")" \
  --runtime-env-json "{\"env_vars\": {$ENV_VARS}}" \
  -- zsl-scale run "$(basename "$JOB_FILE")" "$@"
