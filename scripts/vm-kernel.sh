#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The Debian 6.1 kernel the module is built and tested against.
#
#   vm-kernel.sh --abi          print the ABI of the newest installed
#                               /usr/src/linux-headers-*-amd64 (6.1.0-NN-amd64)
#   vm-kernel.sh --kdir         print that headers directory
#   vm-kernel.sh --vmlinuz [DIR]  print DIR/vmlinuz-ABI, downloading the
#                               matching linux-image-ABI-unsigned package
#                               first if needed; DIR defaults to
#                               $LLMQ_VM_CACHE, else ~/.cache/llmq
#
# Never the running kernel's: the host may run anything (and has no modules).
set -euo pipefail

abi() {
	local d best=""
	for d in /usr/src/linux-headers-6.1.*-amd64; do
		[ -f "$d/Makefile" ] || continue
		best=$d
	done
	if [ -z "$best" ]; then
		echo "vm-kernel: no /usr/src/linux-headers-6.1.*-amd64 (apt-get install linux-headers-amd64)" >&2
		return 1
	fi
	# Sorted by the shell's glob: pick the highest NN numerically.
	for d in /usr/src/linux-headers-6.1.*-amd64; do
		[ -f "$d/Makefile" ] || continue
		if [ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1)" = "$d" ]; then
			best=$d
		fi
	done
	basename "$best" | sed 's/^linux-headers-//'
}

case "${1:-}" in
--abi)
	abi
	;;
--kdir)
	echo "/usr/src/linux-headers-$(abi)"
	;;
--vmlinuz)
	dir=${2:-${LLMQ_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmq}}
	a=$(abi)
	out="$dir/vmlinuz-$a"
	if [ ! -s "$out" ]; then
		mkdir -p "$dir"
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		# apt-get download writes to the current directory; _apt may not
		# be able to, which only costs a warning.
		(cd "$tmp" && apt-get download -qq "linux-image-$a-unsigned" </dev/null \
			>/dev/null 2>"$tmp/err") || {
			cat "$tmp/err" >&2
			echo "vm-kernel: cannot download linux-image-$a-unsigned" >&2
			exit 1
		}
		dpkg-deb --fsys-tarfile "$tmp"/linux-image-*.deb |
			tar -x -C "$tmp" "./boot/vmlinuz-$a"
		mv "$tmp/boot/vmlinuz-$a" "$out"
	fi
	echo "$out"
	;;
*)
	echo "usage: vm-kernel.sh --abi | --kdir | --vmlinuz [DIR]" >&2
	exit 2
	;;
esac
