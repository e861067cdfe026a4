#!/usr/bin/env bash
# Developer entry point: installs missing Debian packages, builds, and runs.
#   deploy/dev.sh run [dagd flags...]   build, then run dagd with dags/ on the embedded PostgreSQL
#   deploy/dev.sh test [ctest args...]  build, then run every test (unit, integration, e2e)
#   deploy/dev.sh test-asan             the same under AddressSanitizer + UBSan (build-asan/)
#   deploy/dev.sh bench [options...]    build dagd and dagd_bench optimised (build-release/), then
#                                       run the benchmarks (bench/run.sh; --scene NAME runs one)
#   deploy/dev.sh fuzz [SECONDS]        build the libFuzzer targets with clang (build-fuzz/), run
#                                       each for SECONDS (default 60) from its seed corpus
# As root, the embedded PostgreSQL runs as the `postgres` account, bash tasks run as the `dagd`
# account (install-deps.sh creates it) and the state directory is /var/lib/dagd (PostgreSQL must
# be able to reach it); otherwise it is ./.dagd. On the first `run` (no API user yet) it creates
# the user `admin` (role admin) with a generated password and prints both once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command=${1:-}
shift || true
jobs=$(nproc)

build() {  # build DIR TYPE SANITIZE [TARGET...]; WERROR=OFF in the environment drops -Werror
  local dir=$1 type=$2 sanitize=$3
  shift 3
  echo "dev.sh: building ${*:-everything} in $dir ($type) on $jobs cores"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DDAGD_WERROR="${WERROR:-ON}" -DDAGD_SANITIZE="$sanitize" >/dev/null
  cmake --build "$dir" -j"$jobs" ${1:+--target "$@"}
}

case "$command" in
  run)
    deploy/install-deps.sh
    build build RelWithDebInfo OFF dagd
    if [ "$(id -u)" = 0 ]; then
      flags=(--dags-folder dags --state-dir /var/lib/dagd --pg-user postgres "$@")
    else
      flags=(--dags-folder dags --state-dir "$PWD/.dagd" "$@")
    fi
    # The first run makes an admin, so that the README's curl lines work at once.
    users=$(build/daemon/dagd "${flags[@]}" users list)
    if [ "$(printf '%s\n' "$users" | wc -l)" -le 1 ]; then
      password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
      printf '%s\n' "$password" |
        build/daemon/dagd "${flags[@]}" users add admin --role admin --password-stdin
      echo "dev.sh: created the API user 'admin' with password: $password"
      echo "dev.sh: (shown this once; more users: build/daemon/dagd ${flags[*]} users add NAME --role ROLE)"
    fi
    echo "dev.sh: starting dagd with the DAGs in dags/ (Ctrl-C stops it)"
    exec build/daemon/dagd "${flags[@]}"
    ;;
  test)
    deploy/install-deps.sh
    build build RelWithDebInfo OFF
    exec tests/run-tests.sh build -j"$jobs" "$@"
    ;;
  test-asan)
    deploy/install-deps.sh
    build build-asan Debug ON
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp
    exec tests/run-tests.sh build-asan -j"$jobs" "$@"
    ;;
  bench)
    deploy/install-deps.sh
    build build-release Release OFF dagd dagd_bench
    exec bench/run.sh build-release "$@"
    ;;
  fuzz)
    deploy/install-deps.sh --fuzz
    seconds=${1:-60}
    cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
      -DDAGD_FUZZ=ON -DDAGD_WERROR=ON >/dev/null
    cmake --build build-fuzz -j"$jobs" --target dag_parser_fuzz template_fuzz http_request_fuzz
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    for target in dag_parser_fuzz template_fuzz http_request_fuzz; do
      corpus=build-fuzz/corpus/${target%_fuzz}
      mkdir -p "$corpus"
      echo "fuzz: $target for ${seconds}s (corpus $corpus, seeds tests/fuzz/corpus/${target%_fuzz})"
      build-fuzz/tests/fuzz/$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -print_funcs=0 -artifact_prefix=build-fuzz/ "$corpus" "tests/fuzz/corpus/${target%_fuzz}" 2>&1 | tail -n 40
    done
    ;;
  *)
    echo "usage: deploy/dev.sh run|test|test-asan|bench|fuzz [args...]" >&2
    exit 2
    ;;
esac
