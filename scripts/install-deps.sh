#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what llmq needs from Debian's packages, when it is missing.  Quiet
# when everything is there; never prompts.
#
#   install-deps.sh          what building and running need (make, make demo)
#   install-deps.sh --test   also the test references and tools (make check)
set -euo pipefail

tests=0
[ "${1:-}" = "--test" ] && tests=1

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
need libxxhash libxxhash-dev
[ -f /usr/include/uninorm.h ] || pkgs+=(libunistring-dev)
need cmd:cc gcc
need cmd:make make
if [ $tests -eq 1 ]; then
	[ -f /usr/include/simde/x86/avx512.h ] || pkgs+=(libsimde-dev)
	need cmd:clang clang
	/usr/bin/python3 -c 'import numpy' 2>/dev/null || pkgs+=(python3-numpy)
	/usr/bin/python3 -c 'import torch' 2>/dev/null || pkgs+=(python3-torch)
	/usr/bin/python3 -c 'import sentencepiece' 2>/dev/null || pkgs+=(python3-sentencepiece)
	# torch through the reference BLAS is 30x slower than through OpenBLAS.
	dpkg -s libopenblas0-openmp >/dev/null 2>&1 || pkgs+=(libopenblas0-openmp)
	need cmd:gnuplot gnuplot-nox
	# The man pages (rst2man), rendering them, and checking the systemd
	# units and the sysusers file (tests/live/test_install.c).
	need cmd:rst2man python3-docutils
	need cmd:man man-db
	need cmd:groff groff-base
	need cmd:systemd-analyze systemd
	# promtool checks llmqctl stats --prometheus.
	need cmd:promtool prometheus
	command -v npm >/dev/null 2>&1 || pkgs+=(npm)
	# The kernel transport's stage (make vm-check): the 6.1 headers, a
	# kernel to boot under QEMU, an initramfs, and the module's linters.
	ls -d /usr/src/linux-headers-6.1.*-amd64 >/dev/null 2>&1 || pkgs+=(linux-headers-amd64)
	need cmd:qemu-system-x86_64 qemu-system-x86
	dpkg -s busybox-static >/dev/null 2>&1 || pkgs+=(busybox-static)
	need cmd:cpio cpio
	need cmd:sparse sparse
	need cmd:dkms dkms
	[ -f /usr/src/linux-source-6.1.tar.xz ] || pkgs+=(linux-source-6.1)
fi

# The Debian kernel matching those headers, for QEMU (only its vmlinuz).
vmlinuz() {
	[ $tests -eq 1 ] || return 0
	"$(dirname "$0")/vm-kernel.sh" --vmlinuz >/dev/null
}

if [ ${#pkgs[@]} -eq 0 ]; then
	vmlinuz
	exit 0
fi

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
vmlinuz
