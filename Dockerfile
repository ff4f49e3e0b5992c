# syntax=docker/dockerfile:1
# One image for every Hivewire process: the entrypoint is `hivewire`, the arguments pick the component.
#
#   docker build -t hivewire:0.1.0 .
#   docker run --rm hivewire:0.1.0 --version
#   docker run --rm -p 127.0.0.1:8080:8080 -e HIVEWIRE_GATEWAY_HOST=0.0.0.0 hivewire:0.1.0 up
#
# On Kubernetes (k8s/, helm/hivewire) each Deployment runs one component with the same image:
# `gateway`, `agent run knowledge.agent:knowledge`, `agent run agents.desk.triage:triage`,
# `agent run agents.desk.answer:answer`; `keys create --tenant T` makes an API key.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the virtual environment, from the lock file (hash-checked), then Hivewire itself ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

RUN python -m pip install --quiet "uv>=0.5,<1" \
    && python -m venv /opt/hivewire

WORKDIR /src

# The dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY requirements.lock ./
# The lock also pins the development tools (`--extra dev`); a running mesh needs none of them
# (nor llama.cpp: in a cluster the agents call a model endpoint, `hivewire up --model` is for one machine).
RUN python -m uv pip install --python /opt/hivewire/bin/python --require-hashes -r requirements.lock \
    && python -m uv pip uninstall --python /opt/hivewire/bin/python \
        a2a-sdk hypothesis mypy pytest pytest-asyncio pytest-timeout ruff xllamacpp

# Hivewire itself, as a regular (not editable) wheel: its dependencies are all installed above.
COPY pyproject.toml README.md ./
COPY bus ./bus
COPY agents ./agents
COPY knowledge ./knowledge
COPY gateway ./gateway
RUN python -m uv pip install --python /opt/hivewire/bin/python --no-deps . \
    && /opt/hivewire/bin/hivewire --version

# ---- runtime: the environment and a non-root user, nothing else ----
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
RUN groupadd --system --gid ${UID} hivewire \
    && useradd --system --uid ${UID} --gid ${UID} --home-dir /home/hivewire --create-home \
        --shell /usr/sbin/nologin hivewire

COPY --from=build /opt/hivewire /opt/hivewire

# ORT_DISABLE_TELEMETRY: onnxruntime's Linux wheel sends usage telemetry unless it is set
# (knowledge/embeddings.py sets it too; here it also covers anything importing onnxruntime first).
# HOME and WORKDIR: defaults relative to the working directory (.hivewire/...) land in the home.
ENV PATH="/opt/hivewire/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    HOME=/home/hivewire

# The numeric uid lets Kubernetes check runAsNonRoot without resolving the name.
USER ${UID}:${UID}
WORKDIR /home/hivewire

# 8080: the gateway (HTTP, /healthz, /readyz, /metrics); 9464: an agent's /metrics when
# HIVEWIRE_METRICS_PORT=9464; 4222: NATS, for `hivewire up` or `hivewire nats`.
EXPOSE 8080 9464 4222

ENTRYPOINT ["hivewire"]
CMD ["--help"]
