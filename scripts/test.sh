#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: installs what is missing, builds, runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm install rather than npm ci: with omit-lockfile-registry-resolved set (as on these machines) the lock has
# no entries for other platforms' optional packages, and npm ci refuses such a lock.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing and cannot be installed (needs root and apt-get)" >&2
    exit 1
  fi
fi

npm run build
npx vitest run "$@"
