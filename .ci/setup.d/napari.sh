#!/usr/bin/env bash
# napari plug-in tests: a virtual X screen (Xvfb) and the libraries Qt 6's xcb platform
# plug-in loads. QT_QPA_PLATFORM=offscreen cannot draw napari's OpenGL canvas, so the tests
# run under Xvfb (started by pytest-xvfb). Idempotent: installs only what is missing.
set -euo pipefail
pkgs=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0
      libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxcb-xfixes0 libxcb-cursor0 libxkbcommon-x11-0
      libegl1 libgl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "napari: system packages present"
    exit 0
fi
echo "napari: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "napari: installed"
