# zsl-scale on a Ray CUDA image, for cluster jobs (jobs/rayjob.yaml, jobs/slurm.sbatch, jobs/ray_submit.sh).
#   docker build -t zsl-scale:0.1.0 .
# Pinned: Ray 2.60.0 (the version pyproject pins: Ray Data's map_batches arguments change across
# releases), Python 3.11, CUDA 12.8. The [gpu] extra brings faiss-gpu; torch 2.13.0 from PyPI is a CUDA
# build on Linux x86_64.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cu128
FROM ${RAY_IMAGE}

USER root
# WordNet 3.0 for the splits and WordNet groups (nltk reads /usr/share/wordnet; see DESIGN §3).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wordnet-base wordnet-sense-index \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/zsl-scale
COPY pyproject.toml README.md ./
COPY zsl_scale ./zsl_scale
COPY jobs ./jobs
COPY splits ./splits
RUN pip install --no-cache-dir ".[gpu,text]" \
 && python -c "import zsl_scale, faiss, torch; print('zsl-scale ok, torch', torch.__version__)"

ENV RAY_AUTH_MODE=disabled \
    HF_HUB_OFFLINE=1 \
    ZSL_SCALE_SPLITS=/opt/zsl-scale/splits
USER ray
