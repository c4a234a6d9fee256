#!/bin/sh
# Fonts for the rendered-characters image set (edgegrow data fonts, bench/grow_vs_uniform.py): the free
# families Debian ships. With apt-get, installs whichever of them are missing (root or sudo); elsewhere,
# asks for some when fewer than 30 font files are present. A count of font files alone is not enough
# on Debian: a browser's dependencies bring DejaVu and Liberation, dozens of files but two families.
set -e
packages="fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-crosextra-carlito fonts-crosextra-caladea
fonts-cantarell fonts-lato fonts-go fonts-urw-base35 fonts-linuxlibertine fonts-ebgaramond fonts-hack fonts-inconsolata"
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  missing=""
  for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
  done
  if [ -z "$missing" ]; then
    echo "fonts: all installed"
    exit 0
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq $missing
  exit 0
fi
count=$(fc-list : file 2>/dev/null | grep -ciE '\.(ttf|otf)' || true)
if [ "${count:-0}" -ge 30 ]; then
  echo "fonts: $count installed"
  exit 0
fi
echo "install some free TrueType/OpenType font families (e.g. DejaVu, Liberation, FreeFont, Lato, Go)" >&2
exit 1
