#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the cluster gallery tests, which start a throwaway server of
# their own (tests/servers.py: initdb into a temporary directory, a Unix socket, no TCP port). The Debian package
# only needs to be present; its own cluster service is not used. Idempotent, like install-chromium.sh.
set -euo pipefail

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "root or sudo is needed: apt-get install postgresql" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
initdb=$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1 || command -v initdb)
echo "postgresql ready: $("$initdb" --version)"
