#!/usr/bin/env bash
# Runs the benchmarks of BUILD_DIR against a throwaway PostgreSQL cluster.
# usage: bench/run.sh BUILD_DIR
set -euo pipefail
build_dir=${1:?usage: bench/run.sh BUILD_DIR}
exec "$(dirname "${BASH_SOURCE[0]}")/../tests/with-postgres.sh" "$build_dir/bench/dagd_bench_scheduler"
