#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: start llmqd on the embedded default (userspace transport, a
# private socket) and let several client processes stream answers at once,
# each on its own labelled line, then print what the runtime counted.
#
# Until the CPU engine and the bundled model land, the engine is the null
# engine: a deterministic word stream with a simulated 30 ms step.
set -euo pipefail

O=${1:-build}
bin=$O/bin
tmp=$(mktemp -d /tmp/llmq-demo.XXXXXX)
sock=$tmp/llmq.sock
daemon=
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$bin/llmqd" --foreground --socket "$sock" --engine null --null-delay-us 30000 \
	--batch-timeout-ms 5 &
daemon=$!
for _ in $(seq 100); do
	"$bin/llmq" stats --socket "$sock" >/dev/null 2>&1 && break
	sleep 0.05
done

prompts=("Tell me a story" "What is io_uring?" "Write a haiku" "Explain paged attention"
	 "Why no network stack?" "Count to ten")
n=${#prompts[@]}
echo "llmqd is up on $sock (null engine, 30 ms per step); $n clients stream at once:"
echo
start=$(date +%s.%N)
for i in $(seq 0 $((n - 1))); do
	"$bin/llmq" generate --socket "$sock" --stream --max-tokens $((12 + 4 * i)) \
		"${prompts[$i]}" >"$tmp/out.$i" 2>&1 &
	pids[$i]=$!
done

label() { printf '[client %d pid %-6s] %-26s|' "$1" "${pids[$1]}" "\"${prompts[$1]}\""; }
cols=$(tput cols 2>/dev/null || echo 120)
if [ -t 1 ]; then
	# Redraw one line per client while they stream.
	for i in $(seq 0 $((n - 1))); do echo; done
	while :; do
		running=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
		printf '\033[%dA' "$n"
		for i in $(seq 0 $((n - 1))); do
			line="$(label "$i")$(tr -d '\n' <"$tmp/out.$i")"
			printf '\r\033[K%s\n' "${line:0:$((cols - 1))}"
		done
		[ $running -eq 0 ] && break
		sleep 0.05
	done
fi
status=0
for i in $(seq 0 $((n - 1))); do
	wait "${pids[$i]}" || status=1
	[ -t 1 ] || echo "$(label "$i")$(tr -d '\n' <"$tmp/out.$i")"
done
end=$(date +%s.%N)

echo
"$bin/llmq" stats --socket "$sock" >"$tmp/stats"
get() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/stats"; }
tokens=$(get tokens_generated)
steps=$(get steps)
awk -v t="$tokens" -v s="$steps" -v a="$start" -v b="$end" -v n="$n" 'BEGIN {
	d = b - a
	printf "%d clients, %d tokens in %.2f s: %.0f tokens/s\n", n, t, d, t / d
	printf "%d engine steps for %d tokens: %.1f sequences per step (continuous batching)\n",
		s, t, t / s
}'
kill -TERM "$daemon"
wait "$daemon" && echo "llmqd stopped cleanly" || { echo "llmqd exited $?"; status=1; }
daemon=
exit $status
