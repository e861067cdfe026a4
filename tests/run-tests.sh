#!/usr/bin/env bash
# Runs every test in BUILD_DIR (ctest) against a throwaway PostgreSQL cluster.
# usage: tests/run-tests.sh BUILD_DIR [ctest args...]
set -euo pipefail
build_dir=${1:?usage: tests/run-tests.sh BUILD_DIR [ctest args...]}
shift
exec "$(dirname "${BASH_SOURCE[0]}")/with-postgres.sh" ctest --test-dir "$build_dir" --output-on-failure "$@"
