# The reference training workload (`workloads.train`) for TorchJobs:
# `docker build -f deploy/images/workload.Dockerfile -t pyroclast-train:0.1.0 .` (build context: the repository
# root). The operator runs `torchrun <spec.command>`, e.g. `torchrun -m workloads.train`, with the PET_* env.
# torch comes from PyPI with its CUDA wheels; `--build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# style indexes give a CPU-only image where that index is reachable.
FROM python:3.11-slim
ARG TORCH_INDEX=""
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY controller controller
COPY scheduling scheduling
COPY pyroclast pyroclast
COPY workloads workloads
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} ".[workloads,tracking]"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
# Checkpoints go to the job's volume (PYROCLAST_CHECKPOINT_DIR); nothing is written in the image.
USER 1000:1000
ENTRYPOINT []
CMD ["torchrun", "--help"]
