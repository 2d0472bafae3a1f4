#!/usr/bin/env bash
# Installs Debian's Chromium for the web console's browser tests (tests/ui), which Playwright drives as
# /usr/bin/chromium (no browser download: `playwright install` is never run). Idempotent: nothing happens when
# the packages are already installed, so `make test` calls it on every run.
set -euo pipefail

# fonts-dejavu-core: text in the screenshots of docs/ui/ on a machine that has no fonts yet
PACKAGES=(chromium fonts-dejavu-core)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "root or sudo is needed: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
test -x /usr/bin/chromium || { echo "/usr/bin/chromium is missing after the install" >&2; exit 1; }
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null)"
