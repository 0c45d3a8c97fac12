#!/usr/bin/env bash
# Install everything the tests and the demo need, idempotently: Debian packages, the Python
# virtualenv (.venv) with gitsync and its dev extras, and the cached kube-apiserver and
# kube-controller-manager binaries. Quick (a few seconds) when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(git openssl etcd-server openssh-server golang-1.19-go rsync make ca-certificates chromium prometheus docker-registry)
log() { echo "[setup] $*" >&2; }

missing=()
for pkg in "${APT_PACKAGES[@]}" ${GITSYNC_EXTRA_APT:-}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
    SUDO=sudo
  fi
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
if [[ ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  log "installing gitsync and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import gitsync, kubernetes, git, helm_python' # fail loudly if the install did not work
  touch .venv/.installed
fi

bash scripts/build-k8s.sh >/dev/null
