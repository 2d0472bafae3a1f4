# The service image, on CPU or on an NVIDIA GPU with TensorRT; with EXTRAS=trainer, the trainer image.
#
#   docker build -f docker/service.Dockerfile -t shitu:cpu .
#   docker build -f docker/service.Dockerfile --build-arg DEVICE=gpu -t shitu:gpu .
#   docker build -f docker/service.Dockerfile --build-arg EXTRAS=trainer -t shitu-trainer:cpu .
#
# No models and no gallery inside: mount the model store at /models and a volume at /data.
# Configuration is the SHITU_* environment that service.config.Settings documents.

ARG DEVICE=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# CUDA 12.6 with cuDNN 9: the toolchain of paddlepaddle-gpu's cu126 wheels
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---- device bases, shared by the builder and the runtime so the venv's interpreter path holds in both
FROM ${PYTHON_IMAGE} AS base-cpu
# libgomp: OpenMP runtime that libpaddle links against
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

FROM ${CUDA_IMAGE} AS base-gpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv libgomp1 \
 && rm -rf /var/lib/apt/lists/*
# Paddle dlopens TensorRT by its unversioned names from the library path; the builder links them here
ENV LD_LIBRARY_PATH=/opt/venv/tensorrt

# ---- builder: dependencies first (a layer that only pyproject.toml invalidates), then the project
FROM base-${DEVICE} AS builder
ARG DEVICE
ARG EXTRAS=""
# paddlepaddle-gpu 3.x is not on PyPI: Paddle's own index, one per CUDA version
ARG PADDLE_GPU_INDEX_URL=https://www.paddlepaddle.org.cn/packages/stable/cu126/
# the TensorRT release Paddle's CUDA 12.6 builds are tested with, as NVIDIA's pip wheel of its libraries
ARG TENSORRT_PACKAGE=tensorrt-cu12-libs==10.5.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py pyproject.toml --device "${DEVICE}" --extras "${EXTRAS}" > requirements.txt \
 && if [ "${DEVICE}" = gpu ]; then \
      pip install --extra-index-url "${PADDLE_GPU_INDEX_URL}" -r requirements.txt "${TENSORRT_PACKAGE}" \
      && nvinfer="$(find /opt/venv -name 'libnvinfer.so.*' -print -quit)" \
      && test -n "${nvinfer}" \
      && trt_dir="$(dirname "${nvinfer}")" \
      && ln -s "${trt_dir}" /opt/venv/tensorrt \
      && for lib in libnvinfer libnvinfer_plugin; do \
           ln -sf "$(ls "${trt_dir}/${lib}".so.* | head -n 1)" "${trt_dir}/${lib}.so"; \
         done; \
    else \
      pip install -r requirements.txt; \
    fi
COPY README.md ./
COPY service ./service
COPY trainer ./trainer
COPY shitu ./shitu
RUN pip install --no-deps .

# ---- runtime: the venv, a non-root user, and the directories the volumes mount on
FROM base-${DEVICE} AS runtime
ARG DEVICE
ARG EXTRAS=""
# cairosvg (trainer extra) draws through the system cairo library
RUN case ",${EXTRAS}," in *,trainer,*) \
      apt-get update \
      && apt-get install -y --no-install-recommends libcairo2 \
      && rm -rf /var/lib/apt/lists/* ;; \
    esac
RUN groupadd --system --gid 10001 shitu \
 && useradd --system --uid 10001 --gid shitu --create-home --home-dir /home/shitu shitu \
 && mkdir -p /data /models \
 && chown shitu:shitu /data /models
COPY --from=builder /opt/venv /opt/venv
COPY docker/healthcheck.py /opt/shitu/healthcheck.py
# the trainer's example configs at a path that does not depend on the Python version
COPY trainer/configs /opt/shitu/configs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHITU_RUNTIME__DEVICE=${DEVICE} \
    SHITU_SERVER__HOST=0.0.0.0 \
    SHITU_SERVER__PORT=8000 \
    SHITU_MODELS__STORE=/models \
    SHITU_GALLERY__PATH=/data/gallery
USER shitu
WORKDIR /home/shitu
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/shitu/healthcheck.py"]
ENTRYPOINT ["shitu"]
CMD ["serve"]
