#!/usr/bin/env bash
# The full-size acceptance runs of jobs/flo.yaml (docs/jobs.md, "flo"): 3 seeds of the scale path against the
# reference protocol on the same images, settings and chosen epochs, then DDP with 1 vs 2 workers.
# Hours on 2 CPU cores (8,189 images to extract once, then per seed 3 VAEs of 100 epochs); minutes on a GPU node.
#   bash jobs/flo_acceptance.sh [runs-folder]      # prints one JSON line per comparison
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=$(realpath -m "${1:-runs}")
for seed in 0 1 2; do
  sed "s/      seed: 0$/      seed: $seed/" jobs/flo.yaml > "jobs/.flo-s$seed.yaml"
  if [ "$seed" != 0 ] && [ ! -d "$RUNS/flo-s$seed" ]; then  # reuse the extracted features: only validation onward re-runs
    mkdir -p "$RUNS/flo-s$seed" && cp -r "$RUNS/flo-s0/"{splits,features,embeddings} "$RUNS/flo-s$seed/"
  fi
  /usr/bin/time -f "seed $seed: %e s" zsl-scale run "jobs/.flo-s$seed.yaml" --workdir "$RUNS/flo-s$seed"
  python -c "import json, sys; from zsl_scale.jobs.small_compare import compare
print(json.dumps({'seed': $seed, **compare(sys.argv[1])}))" "$RUNS/flo-s$seed"
done
# DDP: 1 worker instead of 2, the same 2 data streams (so the same global batches), exact_sum as in flo.yaml:
# only train onward re-runs; the two VAEs must be bitwise equal
mkdir -p "$RUNS/flo-s0-w1" && cp -r "$RUNS/flo-s0/"{splits,features,embeddings,validation} "$RUNS/flo-s0-w1/"
sed "s/workers: 2, streams: 2/workers: 1, streams: 2/" jobs/flo.yaml > jobs/.flo-w1.yaml
zsl-scale run jobs/.flo-w1.yaml --workdir "$RUNS/flo-s0-w1"
python -c "import json, sys, torch; from zsl_scale.jobs.small_compare import scale_metrics
a, b = scale_metrics(sys.argv[1]), scale_metrics(sys.argv[2])
sa, sb = (torch.load(p + '/train/vae.pt', weights_only=False)['state_dict'] for p in sys.argv[1:3])
same = sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
print(json.dumps({'ddp_2_workers': a, 'ddp_1_worker': b, 'delta': {k: a[k] - b[k] for k in a}, 'vae_bitwise_equal': same}))" \
  "$RUNS/flo-s0" "$RUNS/flo-s0-w1"
rm -f jobs/.flo-s?.yaml jobs/.flo-w1.yaml
