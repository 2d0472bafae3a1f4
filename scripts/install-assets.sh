#!/usr/bin/env bash
# Installs the registry assets `shitu data synth` and `shitu data demo` draw from. Idempotent: a package that is
# already installed at the pinned version is skipped, so `make` can call this on every run.
#
#   scripts/install-assets.sh            npm packages + the small Debian wallpaper sets (default)
#   scripts/install-assets.sh --minimal  npm packages only: enough for the tests and the demo gallery
#   scripts/install-assets.sh --full     default + plasma wallpapers + openclipart-png (131 MB) for full datasets
#   scripts/install-assets.sh --heldout  npm packages + the families kept out of training (openmoji, twemoji,
#                                        flag-icons, cryptocurrency-icons; 290 MB in all) for
#                                        `shitu data synth --families heldout`; no Debian package
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${SHITU_ASSETS_DIR:-$ROOT/.cache/assets}"

# Pinned versions: synth.json records them, and the same seed gives the same bytes only with the same assets.
NPM_PACKAGES=("@iconify-json/logos@1.2.19" "simple-icons@16.37.0" "fluentui-emoji@1.3.0")
# Never trained on (GUIDE.md): they measure generalisation to artwork of other families.
NPM_HELDOUT=("openmoji@17.0.0" "@twemoji/svg@15.0.0" "flag-icons@7.5.0" "cryptocurrency-icons@0.18.1")
DEBIAN_SMALL=(mate-backgrounds gnome-backgrounds)
DEBIAN_FULL=(plasma-workspace-wallpapers openclipart-png)

level="default"
case "${1:-}" in
  "") ;;
  --minimal) level="minimal" ;;
  --full) level="full" ;;
  --heldout) level="heldout" ;;
  *) echo "usage: $0 [--minimal|--full|--heldout]" >&2; exit 2 ;;
esac

wanted=("${NPM_PACKAGES[@]}")
installed_heldout="$PREFIX/node_modules/flag-icons/package.json"
# Once installed, the held-out families stay in every later install (see the prune note below).
[[ "$level" != "heldout" && ! -f "$installed_heldout" ]] || wanted+=("${NPM_HELDOUT[@]}")
npm_missing=()
for spec in "${wanted[@]}"; do
  name="${spec%@*}"
  version="${spec##*@}"
  manifest="$PREFIX/node_modules/$name/package.json"
  if [[ ! -f "$manifest" ]] || ! grep -q "\"version\": *\"$version\"" "$manifest"; then
    npm_missing+=("$spec")
  fi
done
if ((${#npm_missing[@]})); then
  command -v npm >/dev/null || { echo "npm is needed to install ${npm_missing[*]}" >&2; exit 1; }
  mkdir -p "$PREFIX"
  # --no-save into a private prefix: the repo has no package.json and must not get one. Without one, npm prunes
  # every package the command does not name, so one command names them all, not only the missing ones.
  npm install --silent --no-audit --no-fund --no-save --prefix "$PREFIX" "${wanted[@]}"
fi

debian=()
[[ "$level" == "minimal" || "$level" == "heldout" ]] || debian+=("${DEBIAN_SMALL[@]}")
[[ "$level" != "full" ]] || debian+=("${DEBIAN_FULL[@]}")
apt_missing=()
for package in "${debian[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$package")
done
if ((${#apt_missing[@]})); then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "root or sudo is needed: apt-get install ${apt_missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
echo "assets ($level) ready in $PREFIX"
