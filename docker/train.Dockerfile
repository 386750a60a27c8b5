# df-stack training image: CUDA PyTorch base + the project (policy, data_collection,
# training, sim, dfstack) installed, `dfstack train` as the entry point.
#
#   docker build -f docker/train.Dockerfile -t df-stack-train .
#   docker run --gpus all --shm-size=2g -v $PWD/data:/data:ro -v $PWD/outputs:/outputs \
#       df-stack-train experiment=swap_fruit task.dataset=/data/swap_fruit.zarr run_dir=/outputs/swap_fruit-df
#
# See docs/training.md for multi-GPU (torchrun) and simulator evaluation.

# Python 3.11 (zarr 3 needs >= 3.11); torch comes from the base image and satisfies
# pyproject's range, so pip keeps this CUDA build.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    # Closed-loop evaluation renders offscreen with MuJoCo on EGL (Mesa, on the CPU).
    MUJOCO_GL=egl

# EGL/GL libraries for MuJoCo's offscreen renderer (simulator evaluation only).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libegl1 libegl-mesa0 libgl1 libgles2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/df-stack
COPY pyproject.toml README.md ./
COPY policy/ policy/
COPY data_collection/ data_collection/
COPY training/ training/
COPY sim/ sim/
COPY dfstack/ dfstack/
COPY benchmarks/ benchmarks/
RUN python -m pip install -e '.[data,train,sim]' \
    && python -c "import torch, hydra, zarr, mujoco; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# Datasets are mounted read-only at /data, runs are written to /outputs.
VOLUME ["/data", "/outputs"]
WORKDIR /outputs
ENTRYPOINT ["dfstack", "train"]
CMD ["--help"]
