# fraudflow tasks. Every recipe bootstraps what it needs (.venv, services).
set shell := ["bash", "-euo", "pipefail", "-c"]
set dotenv-load := false

python := ".venv/bin/python"

# List the recipes.
default:
    @just --list

# Create or refresh .venv from uv.lock (fast when nothing changed).
setup:
    @deploy/bootstrap.sh

# Start the local broker, PostgreSQL and Redis (reused when running).
up: setup
    @{{python}} -m deploy up

# Stop the local stack; leaves no process behind.
down: setup
    @{{python}} -m deploy down

# Show whether each local service is up.
status: setup
    @{{python}} -m deploy status

# Print export lines for the running stack: eval "$(just env)".
env: setup
    @{{python}} -m deploy env

# Run the whole pipeline on the local stack with a live summary.
demo: setup
    @{{python}} -m dataflows.demo

# Run the test suite (starts the local stack itself).
test *ARGS: setup deploy-tools
    {{python}} -m pytest {{ARGS}}

# Only the fast tests that need no services.
test-unit *ARGS: setup
    {{python}} -m pytest -m "not integration" {{ARGS}}

# Format check, lint and type check.
lint: setup
    .venv/bin/ruff format --check .
    .venv/bin/ruff check .
    .venv/bin/mypy dataflows model featurestore deploy

# Rewrite files to the project's format and apply safe lint fixes.
fmt: setup
    .venv/bin/ruff format .
    .venv/bin/ruff check --fix .

# Produce synthetic transactions into the local stack (see --help).
simulate *ARGS: up
    eval "$({{python}} -m deploy env)" && {{python}} -m dataflows.simulator {{ARGS}}

# Create topics, apply migrations, record the model, materialize profiles.
prepare *ARGS: up
    eval "$({{python}} -m deploy env)" && {{python}} -m dataflows.setup {{ARGS}}

# Run the scoring flow alone against the local stack (Ctrl-C stops it).
run *ARGS: prepare
    eval "$({{python}} -m deploy env)" && FRAUDFLOW_DEV_MODE=1 {{python}} -m bytewax.run dataflows.scoring:flow {{ARGS}}

# Write account profiles from a Parquet history into Redis (see --help).
materialize *ARGS: up
    eval "$({{python}} -m deploy env)" && {{python}} -m featurestore.materialize {{ARGS}}

# Train the model from a simulated history; rewrites model/artifacts byte for byte.
train *ARGS: setup
    {{python}} -m model.train {{ARGS}}

# Rows per second of the ONNX scorer at batch sizes 1, 64 and 256 (one thread).
bench-scorer *ARGS: setup
    {{python}} -m model.bench {{ARGS}}

# Install checkov into its own venv (its dependencies clash with the project's).
deploy-tools:
    @deploy/tools.sh

# Validate the Dockerfile, compose file, Kubernetes manifests and Terraform.
deploy-check: setup deploy-tools
    {{python}} -m pytest tests/unit/deploy

# Regenerate the environment-variable table in docs/deployment.md.
envtable: setup
    {{python}} -m deploy.envtable --write docs/deployment.md

# Build the container image (needs a Docker engine).
image tag="0.1.0":
    docker build -f deploy/docker/Dockerfile -t fraudflow:{{tag}} .

# Apply the Kubernetes manifests (waxctl when installed, else kubectl).
deploy-k8s overlay="dev":
    deploy/k8s/deploy.sh {{overlay}}

# Run the pipeline under a real Prometheus; check promtool, rules and every query.
check-observability *ARGS: setup
    {{python}} -m deploy.observability {{ARGS}}

# Draw report.png/report.md of a run (Prometheus --url, or --bench FILE).
report *ARGS: setup
    {{python}} -m deploy.report {{ARGS}}

# Benchmark the flow on its own local stack (~15 min; --quick ~6 min).
bench *ARGS: setup
    {{python}} -m bench run {{ARGS}}
