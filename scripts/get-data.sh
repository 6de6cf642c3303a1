#!/usr/bin/env bash
# Make Fashion-MNIST available: the Debian package when apt is usable, else a checked download.
set -euo pipefail
PYTHON="${PYTHON:-.venv/bin/python}"
have_data() {
  "$PYTHON" -c "from robustcv.data import find_fashion_mnist as f; f('test'); f('train')" 2>/dev/null
}
if have_data; then
  echo "Fashion-MNIST: found"
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  if [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; then
    echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist"
    $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
      || true
  fi
fi
if have_data; then
  echo "Fashion-MNIST: installed"
  exit 0
fi
echo "Fashion-MNIST: apt unavailable, downloading with checksums"
"$PYTHON" -m robustcv data fetch fashion-mnist
