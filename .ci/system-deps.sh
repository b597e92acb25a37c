#!/usr/bin/env bash
# Debian packages the tests need: an X virtual frame buffer and the X/GL libraries Qt's xcb
# platform loads for the napari tests (Qt's offscreen platform cannot render napari image
# layers), and a PostgreSQL server for the study catalog tests.
# Installs them when running as root (as CI does); otherwise says what to install.
set -euo pipefail
pkgs=(xvfb xauth libgl1 libegl1 libx11-xcb1 libdbus-1-3 libfontconfig1 libglib2.0-0
      libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
      libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1
      postgresql)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "system-deps: not a Debian-like system; install Xvfb, Qt's xcb libraries and PostgreSQL yourself: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "system-deps: the napari and study tests need these Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
