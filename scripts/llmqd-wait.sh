# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced by the scripts that start an llmqd of their own (demo, benches).
#
#   llmqd_scratch NAME
#
# makes a scratch directory, $dir, and sets $pid empty; on exit (or INT,
# TERM: status 130) the llmqd whose pid the caller put in $pid is stopped
# and $dir removed.
#
#   llmqd_wait WHO LLMQ SOCK PID LOG
#
# waits until the llmqd PID answers on SOCK (`LLMQ stats`), at most 60 s:
# loading a model takes a moment.  Returns 1, with LOG on stderr, if it
# exited or never answered.

llmqd_wait() {
	local who=$1 llmq=$2 sock=$3 pid=$4 log=$5 i

	for ((i = 0; i < 600; i++)); do
		"$llmq" stats --socket "$sock" >/dev/null 2>&1 && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$who: llmqd exited:" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "$who: llmqd did not answer within 60 s:" >&2
	cat "$log" >&2
	return 1
}

# shellcheck disable=SC2317	# invoked by the EXIT trap
_llmqd_cleanup() {
	if [[ -n ${pid:-} ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "${dir:?}"
}

llmqd_scratch() {
	dir=$(mktemp -d "${TMPDIR:-/tmp}/llmq-$1-XXXXXX")
	pid=
	trap _llmqd_cleanup EXIT
	trap 'exit 130' INT TERM
}
