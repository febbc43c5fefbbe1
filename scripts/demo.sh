#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: start llmqd on the embedded default (userspace transport on a
# private socket, CPU engine, the bundled model) and let several client
# processes stream their answers at once, each labelled, then print what the
# runtime measured and stop it.
#
#   scripts/demo.sh [BUILD_DIR]
#
# DEMO_FAST=1 (CI) asks for short answers; the demo still checks that every
# client got a complete one and that llmqd stops cleanly, and exits 1 if not.
set -euo pipefail
# shellcheck source=scripts/llmqd-wait.sh
. "$(dirname "$0")/llmqd-wait.sh"

O=${1:-build}
bin=$O/bin
tokens=64
[ "${DEMO_FAST:-0}" = 1 ] && tokens=12
tmp=$(mktemp -d /tmp/llmq-demo.XXXXXX)
sock=$tmp/llmq.sock
daemon=
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$bin/llmqd" --foreground --socket "$sock" --batch-timeout-ms 5 2>"$tmp/llmqd.log" &
daemon=$!
llmqd_wait demo "$bin/llmq" "$sock" "$daemon" "$tmp/llmqd.log" || exit 1

prompts=("In the beginning" "And the LORD said unto Moses," "Blessed are the"
	 "The LORD is my shepherd;" "And Jesus answered and said unto them,"
	 "For God so loved")
n=${#prompts[@]}
model=$(sed -n 's/.*listening on [^:]*: //p' "$tmp/llmqd.log" | head -n1)
echo "llmqd is up on $sock (${model:-cpu engine, bundled model})."
echo "$n client processes ask at once, $tokens tokens each, sampled at temperature 0.8:"
echo
start=$(date +%s.%N)
for i in $(seq 0 $((n - 1))); do
	"$bin/llmq" generate --socket "$sock" --stream --verbose --max-tokens $tokens \
		--temperature 0.8 --top-p 0.95 --seed $((i + 1)) "${prompts[$i]}" \
		>"$tmp/out.$i" 2>"$tmp/err.$i" &
	pids[$i]=$!
done

label() { printf '[client %d, pid %-6s]' "$1" "${pids[$1]}"; }
flat() { tr '\n' ' ' <"$tmp/out.$1"; }
if [ -t 1 ]; then
	# One line per client, redrawn while they stream: the latest words.
	cols=$(tput cols 2>/dev/null || echo 100)
	for i in $(seq 0 $((n - 1))); do echo; done
	while :; do
		running=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
		printf '\033[%dA' "$n"
		for i in $(seq 0 $((n - 1))); do
			text="${prompts[$i]}$(flat "$i")"
			room=$((cols - 26))
			[ ${#text} -gt $room ] && text="...${text: -$((room - 3))}"
			printf '\r\033[K%s %s\n' "$(label "$i")" "$text"
		done
		[ $running -eq 0 ] && break
		sleep 0.05
	done
	echo
fi
for i in $(seq 0 $((n - 1))); do
	rcs[$i]=0
	wait "${pids[$i]}" || rcs[$i]=$?
done
end=$(date +%s.%N)

status=0
for i in $(seq 0 $((n - 1))); do
	rc=${rcs[$i]}
	got=$(sed -n 's/^llmq: \([0-9]*\) tokens generated$/\1/p' "$tmp/err.$i")
	echo "$(label "$i") ${got:-no} tokens"
	{ printf '%s' "${prompts[$i]}"; cat "$tmp/out.$i"; echo; } | fold -s -w 96 |
		sed 's/^/    /'
	if [ "$rc" -ne 0 ] || [ -z "$got" ] || [ "$got" -eq 0 ] || [ ! -s "$tmp/out.$i" ]; then
		echo "    !! client $i did not get a complete answer (exit $rc):" \
		     "$(tr '\n' ' ' <"$tmp/err.$i")"
		status=1
	fi
done

echo
"$bin/llmq" stats --socket "$sock" >"$tmp/stats"
get() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/stats"; }
awk -v t="$(get tokens_generated)" -v s="$(get steps)" -v a="$start" -v b="$end" -v n="$n" \
    -v tf50="$(get ttft_p50_us)" -v tf99="$(get ttft_p99_us)" \
    -v it50="$(get itl_p50_us)" -v it99="$(get itl_p99_us)" 'BEGIN {
	d = b - a
	printf "%d clients, %d tokens in %.2f s: %.0f tokens/s in all\n", n, t, d, t / d
	printf "%d engine steps: %.1f sequences per step (continuous batching)\n", s, t / s
	printf "time to first token p50 %.0f ms, p99 %.0f ms; between tokens p50 %.1f ms, " \
	       "p99 %.1f ms\n", tf50 / 1000, tf99 / 1000, it50 / 1000, it99 / 1000
}'
kill -TERM "$daemon"
if wait "$daemon"; then
	echo "llmqd stopped cleanly"
else
	echo "llmqd exited $?"
	status=1
fi
daemon=
exit $status
