#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what llmq needs to build and test, from Debian's packages, when it
# is missing.  Quiet when everything is there; never prompts.
set -euo pipefail

pkgs=()
need() {	# need PKGCONFIG-NAME-OR-COMMAND DEBIAN-PACKAGE
	case "$1" in
	cmd:*)	command -v "${1#cmd:}" >/dev/null 2>&1 || pkgs+=("$2") ;;
	*)	pkg-config --exists "$1" 2>/dev/null || pkgs+=("$2") ;;
	esac
}

command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
need liburing liburing-dev
need cmocka libcmocka-dev
need libnl-genl-3.0 libnl-genl-3-dev
need json-c libjson-c-dev
need libpcre2-8 libpcre2-dev
[ -f /usr/include/uninorm.h ] || pkgs+=(libunistring-dev)
[ -f /usr/include/simde/x86/avx512.h ] || pkgs+=(libsimde-dev)
need cmd:clang clang
/usr/bin/python3 -c 'import numpy' 2>/dev/null || pkgs+=(python3-numpy)
/usr/bin/python3 -c 'import torch' 2>/dev/null || pkgs+=(python3-torch)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
need cmd:cc gcc
need cmd:make make

[ ${#pkgs[@]} -eq 0 ] && exit 0

echo "llmq: installing ${pkgs[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo="sudo -n"
	else
		echo "llmq: please install: ${pkgs[*]} (apt-get install ${pkgs[*]})" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null >/dev/null
