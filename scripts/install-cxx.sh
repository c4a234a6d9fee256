#!/bin/sh
# Install a C++ compiler (g++), which the tests use to compile an exported TFLite Micro C array with a
# small main(), unless one is already there.
set -e
if command -v g++ >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
elif command -v dnf >/dev/null 2>&1; then
  sudo dnf install -y gcc-c++
elif [ "$(uname -s)" = Darwin ]; then
  echo "install-cxx: no g++ here; run 'xcode-select --install' (Apple's command line tools bring g++)" >&2
  exit 1
else
  echo "install-cxx: no apt-get or dnf here; install g++ with your package manager" >&2
  exit 1
fi
command -v g++ >/dev/null 2>&1 && g++ --version | head -1
