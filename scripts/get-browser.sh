#!/usr/bin/env bash
# Make headless Chromium available for the report's browser test (tests/test_report_browser.py):
# the Debian package `chromium` (/usr/bin/chromium), installed quietly with apt-get (via sudo when
# not root). Exits 0 when a browser is available afterwards, 1 otherwise.
set -euo pipefail
find_browser() {
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  return 1
}
if path="$(find_browser)"; then
  echo "Chromium: found $path"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium: not found and apt-get is unavailable; install Chromium by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
  else
    echo "Chromium: not found; run as root or install sudo to let apt-get install it" >&2
    exit 1
  fi
fi
echo "Chromium: installing the Debian package chromium"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
  || { $SUDO apt-get update -q >/dev/null 2>&1 \
       && $SUDO apt-get install -y -q chromium >/dev/null; } \
  || true
if path="$(find_browser)"; then
  echo "Chromium: installed $path"
  exit 0
fi
echo "Chromium: installation failed; try 'sudo apt-get install chromium'" >&2
exit 1
