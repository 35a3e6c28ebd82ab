#!/usr/bin/env bash
# Installs what FlexMoE needs on a Debian/Ubuntu machine that already has Swift 6.3 (host build,
# tests, benchmarks), and with --cross also the aarch64 cross toolchain, the arm64 libzstd and qemu.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cross=0
[ "${1:-}" = "--cross" ] && cross=1

arch=$(dpkg --print-architecture)
# Installed? (libraries are checked for one architecture: amd64 and arm64 -dev packages coexist)
installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }
need=()
for pkg in "libzstd-dev:$arch" "zlib1g-dev:$arch" zstd pkg-config python3; do
  installed "$pkg" || need+=("$pkg")
done
if [ "$cross" = 1 ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    need+=("__update__")
  fi
  for pkg in gcc-aarch64-linux-gnu qemu-user libzstd-dev:arm64; do
    installed "$pkg" || need+=("$pkg")
  done
fi
pkgs=()
for p in "${need[@]+"${need[@]}"}"; do [ "$p" = "__update__" ] || pkgs+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${pkgs[*]:-(package lists only)}" >&2
  $SUDO apt-get update -qq
  [ ${#pkgs[@]} -gt 0 ] && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift (6.3 or later) is not on PATH; install it from swift.org" >&2; exit 1; }
