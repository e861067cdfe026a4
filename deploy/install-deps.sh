#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages dagd needs to build, run and test — only the missing ones.
# Safe to run repeatedly: when everything is present it prints one line and touches nothing.
# Non-interactive (CI, cloud-init). Uses sudo when not root.
#   deploy/install-deps.sh          what dagd needs to build, run and test
#   deploy/install-deps.sh --fuzz   also clang and its libFuzzer runtime (deploy/dev.sh fuzz)
#
# Note: on a fresh host, installing `postgresql` also starts the distribution's own cluster on
# port 5432. dagd does not use it (its embedded cluster listens on a unix socket in its state
# directory), so it is left alone.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libboost-graph-dev
  libpqxx-dev libpq-dev postgresql
  nlohmann-json3-dev libsimdjson-dev
  libspdlog-dev libssl-dev libcurl4-openssl-dev
  libhowardhinnant-date-dev tzdata libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-yaml
  curl ca-certificates
)
# Node for the contract tests' validator (tests/contract/install.sh), when none is on PATH: a
# Node installed another way (e.g. with its own npm) is used as it is.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
if [[ ${1:-} == --fuzz ]]; then
  packages+=(clang libclang-rt-dev)
fi

# The account bash tasks run as when dagd runs as root (the default of --run-as): a system
# account with no login shell and no home directory. Created only when missing, and only with
# root rights (as root, or through sudo without a password prompt).
ensure_task_account() {
  getent passwd dagd >/dev/null && return 0
  local create=(useradd --system --shell /usr/sbin/nologin --home-dir /nonexistent --no-create-home)
  if getent group dagd >/dev/null; then create+=(--gid dagd); else create+=(--user-group); fi
  create+=(dagd)
  if ((EUID == 0)); then
    "${create[@]}"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "${create[@]}"
  else
    echo "install-deps: no account 'dagd' (tasks run as it when dagd runs as root); as root: ${create[*]}" >&2
    return 0
  fi
  echo "install-deps: created the system account 'dagd' for bash tasks"
}
ensure_task_account

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: installing them needs root, and sudo is not available; run this script as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_options=(-y -q -o DPkg::Lock::Timeout=300)

echo "install-deps: installing ${missing[*]}"
for attempt in 1 2 3; do
  if "${as_root[@]}" apt-get "${apt_options[@]}" update; then
    break
  elif ((attempt == 3)); then
    echo "install-deps: apt-get update failed 3 times" >&2
    exit 1
  fi
  echo "install-deps: apt-get update failed (attempt $attempt of 3); retrying in $((attempt * 5)) s" >&2
  sleep $((attempt * 5))
done

# env: sudo drops DEBIAN_FRONTEND by default.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get "${apt_options[@]}" install --no-install-recommends "${missing[@]}"
echo "install-deps: done"
