#!/usr/bin/env bash
# Installs the contract checkers (validate.mjs, cron_compare.mjs) and their npm packages (exact
# versions of package-lock.json) into DIR/node_modules, with `npm ci`; does nothing when DIR
# already holds this lock's packages.
# usage: tests/contract/install.sh DIR
# Needs node and npm (Debian: nodejs npm; deploy/install-deps.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:?usage: tests/contract/install.sh DIR}
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "contract/install.sh: '$tool' is missing; run deploy/install-deps.sh (Debian: nodejs npm)" >&2
    exit 1
  fi
done
mkdir -p "$dir"
cp "$here/validate.mjs" "$here/cron_compare.mjs" "$dir/"
stamp="$dir/node_modules/.dagd-lock"
if [[ -f $stamp ]] && cmp -s "$stamp" "$here/package-lock.json"; then
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
# Node trusts only its own CA list; the machine's store may hold the CA of a proxy it must use.
if [[ -z ${NODE_EXTRA_CA_CERTS:-} && -r /etc/ssl/certs/ca-certificates.crt ]]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
for attempt in 1 2 3; do
  if (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error); then
    cp "$here/package-lock.json" "$stamp"
    echo "contract/install.sh: checker packages installed in $dir"
    exit 0
  fi
  echo "contract/install.sh: npm ci failed (attempt $attempt of 3)" >&2
  sleep $((attempt * 5))
done
# 77: ctest reports this test as skipped; the contract test skips its schema checks and the cron
# comparison skips.
echo "contract/install.sh: SKIPPED: the npm registry could not be reached; the OpenAPI schema" \
  "checks of the contract test and the cron comparison will not run on this machine" >&2
exit 77
