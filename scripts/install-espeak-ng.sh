#!/bin/sh
# Install espeak-ng, which `edgegrow data kws` synthesises speech with, unless it is already there.
set -e
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install espeak-ng
elif command -v dnf >/dev/null 2>&1; then
  sudo dnf install -y espeak-ng
else
  echo "install-espeak-ng: no apt-get, brew or dnf here; install espeak-ng with your package manager" >&2
  exit 1
fi
command -v espeak-ng >/dev/null 2>&1 && espeak-ng --version
