#!/usr/bin/env bash
# Runs the benchmarks of BUILD_DIR: the real dagd on its embedded PostgreSQL (fsync on), driven
# over loopback HTTP by dagd_bench. Extra arguments go to dagd_bench (--help lists them), e.g.
#   bench/run.sh build-release --scene linear_100x10
# As root, dagd's embedded PostgreSQL runs as the `postgres` account and bash tasks as `dagd`.
set -euo pipefail
build_dir=${1:?usage: bench/run.sh BUILD_DIR [dagd_bench options...]}
shift
echo "bench: commit $(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$build_dir/bench/dagd_bench" "$@"
