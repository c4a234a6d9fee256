#!/bin/sh
# Fonts for the rendered-characters image set (edgegrow data fonts, bench/grow_vs_uniform.py): the free
# families Debian ships. Installs with apt-get (root or sudo) unless at least 30 text fonts are present.
set -e
count=$(fc-list : file 2>/dev/null | grep -ciE '\.(ttf|otf)' || true)
if [ "${count:-0}" -ge 30 ]; then
  echo "fonts: $count installed"
  exit 0
fi
packages="fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-crosextra-carlito fonts-crosextra-caladea
fonts-cantarell fonts-lato fonts-go fonts-urw-base35 fonts-linuxlibertine fonts-ebgaramond fonts-hack fonts-inconsolata"
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq $packages
else
  echo "install some free TrueType/OpenType font families (e.g. DejaVu, Liberation, FreeFont, Lato, Go)" >&2
  exit 1
fi
