#!/usr/bin/env bash
# Deploy the fraudflow scoring cluster to the current Kubernetes context.
#
# Usage: deploy/k8s/deploy.sh dev|prod
#
# Renders the overlay with kustomize (kubectl's built-in copy) and applies it.
# When waxctl, Bytewax's deployment tool, is installed, it is used to show the
# dataflows running in the namespace afterwards; the manifests themselves are
# always applied with kubectl, so both paths deploy the same objects.
set -euo pipefail

overlay="${1:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${here}/overlays/${overlay}"

if [[ -z "${overlay}" || ! -d "${dir}" ]]; then
    echo "usage: $0 dev|prod (expected an overlay under ${here}/overlays, got '${overlay}')" >&2
    exit 64
fi
if [[ "${overlay}" == dev && ! -f "${dir}/secrets.env" ]]; then
    echo "missing ${dir}/secrets.env: copy secrets.env.example and fill it in" >&2
    exit 66
fi
if ! command -v kubectl >/dev/null 2>&1; then
    echo "kubectl is required (kustomize is built in since kubectl 1.14)" >&2
    exit 69
fi

kubectl apply -k "${dir}"
namespace="$(kubectl kustomize "${dir}" | awk '/^kind: Namespace/{found=1} found && /^  name:/{print $2; exit}')"
kubectl -n "${namespace}" rollout status statefulset/fraudflow --timeout=10m

if command -v waxctl >/dev/null 2>&1; then
    waxctl dataflow list --namespace "${namespace}" || true
fi
