#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernel transport's test stage (make vm-check, part of make check):
#
#  1. build driver/llmq.ko against Debian's 6.1 headers with W=1 and sparse
#     (C=2): any warning fails;
#  2. checkpatch.pl --strict (from linux-source-6.1) on the module's sources;
#  3. static test binaries, busybox and the module in an initramfs, booted in
#     qemu-system-x86_64 -accel tcg on the matching Debian kernel with
#     panic_on_warn=1 oops=panic: the guest's /init runs the tests
#     (tests/vm/) and powers off.
#
# Prints cmocka's verdict lines for all of it, so scripts/run-tests.sh
# counts the stage.  Usage: vm-check.sh [BUILD-DIR]; environment: KDIR (the
# headers), VM_TIMEOUT (seconds, default 170), VM_FUZZ (fuzz iterations),
# VM_BENCH=1 (also the round-trip benchmark, /dev/llmq beside the socket),
# VM_SMP (guest CPUs, default 2).
set -uo pipefail
cd "$(dirname "$0")/.."
# Run from make, the variables of our command line (O=, CC=, CFLAGS=...)
# would reach the kernel's make through MAKEFLAGS, where O= means its
# output directory.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

O=${1:-build}
VM=$O/vm
VM_TIMEOUT=${VM_TIMEOUT:-170}
VM_FUZZ=${VM_FUZZ:-200000}
# Two vCPUs let clients and runtimes race; the benchmark wants one, where a
# wake-up is not an inter-processor interrupt to a TCG thread the host may
# not schedule for milliseconds.
VM_SMP=${VM_SMP:-2}
NICE=${NICE:-}
CC=${CC:-cc}

passed=0
failed=0
failed_names=()

ok() {
	echo "[       OK ] $1"
	passed=$((passed + 1))
}

fail() {
	echo "[  FAILED  ] $1"
	failed=$((failed + 1))
	failed_names+=("$1")
}

summary() {
	echo "[==========] vm-check: $((passed + failed)) test(s) run."
	echo "[  PASSED  ] $passed test(s)."
	if [ "$failed" -gt 0 ]; then
		echo "[  FAILED  ] $failed test(s), listed below:"
		for n in "${failed_names[@]}"; do
			echo "[  FAILED  ] $n"
		done
		exit 1
	fi
	exit 0
}

mkdir -p "$VM"
KDIR=${KDIR:-$(scripts/vm-kernel.sh --kdir)} || { fail vm_headers; summary; }
ABI=${KDIR##*/linux-headers-}

# ---- 1. the module, W=1 and sparse ------------------------------------------
# Built from a copy, so that make check leaves the source tree clean.
src=$(realpath -m "$VM/src")
rm -rf "$src"
mkdir -p "$src/driver" "$src/include/uapi/linux"
cp Kbuild "$src/"
cp driver/Kbuild driver/*.c "$src/driver/"
cp driver/*.h "$src/driver/" 2>/dev/null
cp include/uapi/linux/llmq.h "$src/include/uapi/linux/"
echo "[ RUN      ] module_w1_sparse"
if ! command -v sparse >/dev/null; then
	echo "sparse missing (apt-get install sparse)"
	fail module_w1_sparse
elif $NICE make -s -C "$KDIR" M="$src" W=1 C=2 modules >"$VM/kbuild.log" 2>&1 &&
     ! grep -E ': (warning|error|note):|^WARNING' "$VM/kbuild.log"; then
	ok module_w1_sparse
else
	cat "$VM/kbuild.log"
	fail module_w1_sparse
fi
KO=$src/driver/llmq.ko

# ---- 2. checkpatch --strict -----------------------------------------------
echo "[ RUN      ] module_checkpatch"
cp_dir=$VM/checkpatch
if [ ! -f "$cp_dir/checkpatch.pl" ] && [ -f /usr/src/linux-source-6.1.tar.xz ]; then
	rm -rf "$cp_dir.tmp"
	mkdir -p "$cp_dir.tmp"
	$NICE tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$cp_dir.tmp" --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch' &&
		mkdir -p "$cp_dir" && mv "$cp_dir".tmp/*/scripts/* "$cp_dir/"
	rm -rf "$cp_dir.tmp"
fi
if [ ! -f "$cp_dir/checkpatch.pl" ]; then
	echo "checkpatch.pl missing (apt-get install linux-source-6.1)"
	fail module_checkpatch
elif checkpatch() {
	# Relative paths: checkpatch knows include/uapi/ by its path.  In a git
	# tree it caches CamelCase words in the working directory: not ours.
	perl "$cp_dir/checkpatch.pl" --strict --no-tree --quiet --show-types \
		--ignore FILE_PATH_CHANGES "$@"
	local rc=$?
	rm -f .checkpatch-camelcase.*
	return $rc
     } &&
     # Generated files of an in-tree make modules are not ours to style.
     checkpatch -f $(ls driver/*.c | grep -v '\.mod\.c$') driver/*.h driver/Kbuild Kbuild \
	>"$VM/checkpatch.log" 2>&1 &&
     # _Static_assert is C11's keyword, not CamelCase.
     checkpatch --ignore CAMELCASE -f include/uapi/linux/llmq.h >>"$VM/checkpatch.log" 2>&1; then
	ok module_checkpatch
else
	cat "$VM/checkpatch.log"
	fail module_checkpatch
fi

# ---- 2b. the DKMS package ----------------------------------------------------
# What make dkms-src installs must build under dkms itself, in trees of our
# own (--dkmstree, --sourcetree, --installtree: nothing under /var/lib/dkms
# but the signing key dkms makes once).
echo "[ RUN      ] module_dkms"
dk=$(realpath -m "$VM/dkms")
dkver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' driver/dkms.conf)
rm -rf "$dk"
mkdir -p "$dk/tree" "$dk/inst"
if ! command -v dkms >/dev/null; then
	echo "dkms missing (apt-get install --no-install-recommends dkms)"
	fail module_dkms
elif make -s dkms-src DESTDIR="$dk/root" UDEVDIR=/udev >"$dk/log" 2>&1 &&
     $NICE dkms build -m llmq -v "$dkver" -k "$ABI" --dkmstree "$dk/tree" \
	--sourcetree "$dk/root/usr/src" --installtree "$dk/inst" >>"$dk/log" 2>&1 &&
     dko=$(find "$dk/tree/llmq/$dkver/$ABI" -name 'llmq.ko*' | head -n1) &&
     [ -n "$dko" ] && [ "$(modinfo -F name "$dko")" = llmq ] &&
     modinfo -F vermagic "$dko" | grep -q "^$ABI "; then
	ok module_dkms
else
	cat "$dk/log"
	fail module_dkms
fi

# ---- 3. the guest ---------------------------------------------------------
echo "[ RUN      ] vm_boot"
[ -f "$KO" ] || { echo "no module to test"; fail vm_boot; summary; }
vmlinuz=$(scripts/vm-kernel.sh --vmlinuz) || { fail vm_boot; summary; }
busybox=$(command -v busybox || true)
# ldd fails on a static binary, saying so.
if [ -z "$busybox" ] || ! { ldd "$busybox" 2>&1 || true; } | grep -q 'not a dynamic'; then
	echo "a static busybox is needed (apt-get install busybox-static)"
	fail vm_boot
	summary
fi
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v cpio >/dev/null; then
	echo "qemu-system-x86_64 and cpio are needed (apt-get install qemu-system-x86 cpio)"
	fail vm_boot
	summary
fi

# The benchmark only with VM_BENCH=1 (make vm-bench): its timings under TCG
# on a busy host are too noisy to gate make check on.
bench_cmd=
if [ "${VM_BENCH:-0}" = 1 ]; then
	bench_cmd='/test_llmq_runtime /llmq.ko /bin/llmqd bench; echo "LLMQ-VM-RC $?"'
fi

root=$VM/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp "$busybox" "$root/bin/busybox"
if ! $NICE "$CC" -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude/uapi -static \
	-o "$root/test_llmq_dev" tests/vm/test_llmq_dev.c tests/vm/harness.c -luring; then
	fail vm_boot
	summary
fi
if ! $NICE "$CC" -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude/uapi \
	-Itools/lib/llmq -Itests/lib -static -o "$root/test_llmq_runtime" \
	tests/vm/test_llmq_runtime.c tests/vm/harness.c tests/lib/requests.c "$O/lib/libllmq.a" \
	-lm; then
	echo "build libllmq first (make all)"
	fail vm_boot
	summary
fi
# llmqctl through llmq.ko's generic netlink family (libnl and json-c, static).
if ! $NICE "$CC" -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude/uapi \
	-Itools/lib/llmq -Itests/lib \
	$(pkg-config --cflags libnl-genl-3.0 2>/dev/null || echo -I/usr/include/libnl3) \
	-static -o "$root/test_llmq_genl" tests/vm/test_llmq_genl.c tests/vm/harness.c \
	tests/lib/requests.c \
	"$O/lib/libllmq.a" -lnl-genl-3 -lnl-3 -ljson-c -lpthread -lm; then
	fail vm_boot
	summary
fi
# llmqd as it is built, with the shared libraries it loads.
copy_bin() {
	local lib
	mkdir -p "$root$(dirname "$2")"
	cp "$1" "$root$2"
	for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}
[ -x "$O/bin/llmqd" ] || { echo "build llmqd first (make all)"; fail vm_boot; summary; }
copy_bin "$O/bin/llmqd" /bin/llmqd
[ -x "$O/bin/llmqctl" ] || { echo "build llmqctl first (make all)"; fail vm_boot; summary; }
copy_bin "$O/bin/llmqctl" /bin/llmqctl
# The ring issue's live suite, over /dev/llmq: it finds llmqd and llmq in
# ../bin beside itself.
if [ ! -x "$O/tests/test_live" ] || [ ! -x "$O/bin/llmq" ]; then
	echo "build the live suite first (make $O/tests/test_live)"
	fail vm_boot
	summary
fi
copy_bin "$O/tests/test_live" /live/tests/test_live
copy_bin "$O/bin/llmqd" /live/bin/llmqd
copy_bin "$O/bin/llmq" /live/bin/llmq
cp "$KO" "$root/llmq.ko"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo LLMQ-VM-BEGIN
/test_llmq_dev /llmq.ko $VM_FUZZ
echo "LLMQ-VM-RC \$?"
/test_llmq_runtime /llmq.ko /bin/llmqd
echo "LLMQ-VM-RC \$?"
/test_llmq_genl /llmq.ko /bin/llmqd /bin/llmqctl
echo "LLMQ-VM-RC \$?"
insmod /llmq.ko && LLMQ_TEST_TRANSPORT=kernel /live/tests/test_live && rmmod llmq
echo "LLMQ-VM-RC \$?"
$bench_cmd
echo LLMQ-VM-DONE
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$VM/initramfs.gz"

log=$VM/console.log
start=$(date +%s)
$NICE timeout -k 5 "$VM_TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 -smp "$VM_SMP" \
	-nographic -no-reboot -nodefaults -serial stdio -display none \
	-kernel "$vmlinuz" -initrd "$VM/initramfs.gz" \
	-append 'console=ttyS0 panic=-1 oops=panic panic_on_warn=1 loglevel=4' \
	</dev/null >"$log" 2>&1
rc=$?
secs=$(($(date +%s) - start))
tr -d '\r' <"$log" | sed -n '/LLMQ-VM-BEGIN/,$p'
echo "vm: kernel $ABI, $VM_SMP vCPU(s), $secs s, qemu exit $rc"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "vm: timed out after $VM_TIMEOUT s"
	tail -n 40 "$log"
	fail vm_boot
elif ! grep -q LLMQ-VM-DONE "$log"; then
	echo "vm: the guest did not finish"
	tail -n 60 "$log"
	fail vm_boot
else
	ok vm_boot
fi

# A guest program that was killed (the OOM killer, its own alarm) or could
# not start prints no FAILED line of cmocka's: its exit status says it.
n=0
while read -r rc; do
	n=$((n + 1))
	if [ "$rc" != 0 ]; then
		echo "vm: guest program $n exited $rc"
		fail "vm_guest_program_$n"
	fi
done < <(tr -d '\r' <"$log" | sed -n 's/^LLMQ-VM-RC \([0-9]*\)$/\1/p')

# The guest's own verdicts count as tests.
for gp in $(tr -d '\r' <"$log" | sed -n 's/.*\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p'); do
	passed=$((passed + gp))
done
if [ -n "$bench_cmd" ]; then
	echo "[ RUN      ] vm_bench"
	if tr -d '\r' <"$log" | grep -q '^bench: gen  16 '; then
		ok vm_bench
	else
		fail vm_bench
	fi
fi
while read -r name; do
	[ -n "$name" ] && fail "$name"
done < <(tr -d '\r' <"$log" | sed -n 's/^\[  FAILED  \] \(test_[a-z0-9_]*\)$/\1/p' | sort -u)

echo "[ RUN      ] vm_kernel_clean"
if grep -E 'WARNING:|BUG:|Oops|Kernel panic|general protection|KASAN|UBSAN|refcount_t|list_(add|del) corruption' "$log"; then
	fail vm_kernel_clean
else
	ok vm_kernel_clean
fi
summary
