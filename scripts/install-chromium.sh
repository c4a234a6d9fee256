#!/bin/sh
# Install Chromium, which the report test renders report.html in (headless), unless it is already there.
# Only the tests need it; edgegrow itself writes plain HTML and SVG.
set -e
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install --cask chromium
elif command -v dnf >/dev/null 2>&1; then
  sudo dnf install -y chromium
else
  echo "install-chromium: no apt-get, brew or dnf here; install Chromium with your package manager" >&2
  exit 1
fi
command -v chromium >/dev/null 2>&1 && chromium --version
