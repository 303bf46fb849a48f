#!/usr/bin/env bash
# Submit a zsl-scale job to a running Ray cluster (its dashboard address in RAY_ADDRESS).
#   RAY_ADDRESS=http://head-node:8265 jobs/ray_submit.sh jobs/imagenet21k.yaml [--workdir /shared/...]
# The cluster's image must have zsl-scale installed (see the Dockerfile); only the job files travel.
set -euo pipefail
cd "$(dirname "$0")/.."
JOB_FILE=${1:-jobs/imagenet21k.yaml}
shift || true
: "${RAY_ADDRESS:=http://127.0.0.1:8265}"
export RAY_ADDRESS
SUBMISSION_ID=${SUBMISSION_ID:-zsl-$(basename "$JOB_FILE" .yaml)-$(date +%Y%m%d-%H%M%S)}
exec ray job submit \
  --submission-id "$SUBMISSION_ID" \
  --working-dir jobs \
  --runtime-env-json '{"env_vars": {"RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}}' \
  -- zsl-scale run "$(basename "$JOB_FILE")" "$@"
