#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-ring.sh: measure the llmq ring (round trip and throughput of the
# null engine at zero delay) beside the round trip of one HTTP/1.1 request
# to a loopback nginx, in one run, and compare them with the targets
# (ring p50 under 20 us, HTTP p50 at least 10x the ring's).
#
#   scripts/bench-ring.sh [BUILD_DIR]      (make bench-ring)
#
# Needs BUILD_DIR/bin/llmqd and BUILD_DIR/bin/llmq-ringbench.  Installs
# nginx-light when nginx is missing and we are root, else skips HTTP.
# Environment: ITERS (20000), WARMUP (1000), SECONDS_PER_RUN (3), WINDOW (4),
# BENCH_NGINX (path of nginx to use, or "none" to skip the HTTP part).
set -euo pipefail

O=${1:-build}
RB=$O/bin/llmq-ringbench
LLMQD=$O/bin/llmqd
ITERS=${ITERS:-20000}
WARMUP=${WARMUP:-1000}
SECS=${SECONDS_PER_RUN:-3}
WINDOW=${WINDOW:-4}
TARGET_P50_US=20
TARGET_RATIO=10

for b in "$RB" "$LLMQD"; do
	if [[ ! -x $b ]]; then
		echo "bench-ring: $b is missing; run make first" >&2
		exit 1
	fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/llmq-bench.XXXXXX")
SOCK=$TMP/llmq.sock
LLMQD_PID=
NGINX_PID=

stop_pid() {
	local pid=$1

	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317	# invoked by the EXIT trap
cleanup() {
	stop_pid "$NGINX_PID"
	stop_pid "$LLMQD_PID"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
	echo "bench-ring: $*" >&2
	if [[ -s $TMP/llmqd.log ]]; then
		echo "--- llmqd log (last 20 lines) ---" >&2
		tail -n 20 "$TMP/llmqd.log" >&2
	fi
	exit 1
}

# jget JSON KEY: the value of KEY in ringbench's flat one-line JSON.
jget() {
	sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"
}

# calc EXPR: floating point arithmetic.
calc() {
	awk "BEGIN { printf \"%.2f\", $1 }"
}

# rb ARGS...: run ringbench with --json under a time limit; print its line.
rb() {
	local out

	if ! out=$(timeout 120 "$RB" "$@" --json 2>"$TMP/rb.err"); then
		cat "$TMP/rb.err" >&2
		die "llmq-ringbench $* failed"
	fi
	if [[ -s $TMP/rb.err ]]; then
		sed 's/^/  note: /' "$TMP/rb.err" >&2
	fi
	if [[ -n $LLMQD_PID ]] && ! kill -0 "$LLMQD_PID" 2>/dev/null; then
		die "llmqd died during: llmq-ringbench $*"
	fi
	echo "$out"
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local n=$(($1 * 20))

	shift
	while ((n-- > 0)); do
		"$@" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

tcp_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The CPUs this script may run on, listed one by one ("0-2,4" -> 0 1 2 4).
cpus_allowed() {
	local r

	for r in $(taskset -cp $$ | sed 's/.*: *//; s/,/ /g'); do
		if [[ $r == *-* ]]; then
			seq "${r%-*}" "${r#*-}"
		else
			echo "$r"
		fi
	done
}

# Placements: "default" leaves both ends to the scheduler, "same" pins the
# server and the client to one CPU, "cross" to two different CPUs.
declare -A R			# R[what.placement] = ringbench JSON line
declare -A CLIENT_CPU
PLACES=(default)
declare -A PLACE_LABEL=([default]="placement left to the scheduler")
if command -v taskset >/dev/null; then
	mapfile -t cpus < <(cpus_allowed)
	SRV_CPU=${cpus[0]}
	PLACES+=(same)
	CLIENT_CPU[same]=$SRV_CPU
	PLACE_LABEL[same]="server and client both on CPU $SRV_CPU"
	if ((${#cpus[@]} > 1)); then
		PLACES+=(cross)
		CLIENT_CPU[cross]=${cpus[1]}
		PLACE_LABEL[cross]="server on CPU $SRV_CPU, client on CPU ${cpus[1]}"
	fi
fi

# pin_server PID PLACE: pin PID for PLACE; prints what to restore.
pin_server() {
	taskset -cp "$1" | sed 's/.*: *//'
	if [[ $2 != default ]]; then
		taskset -cp "$SRV_CPU" "$1" >/dev/null
	fi
}

# client_args PLACE: the ringbench options placing the client.
client_args() {
	if [[ $1 != default ]]; then
		echo "--cpu ${CLIENT_CPU[$1]}"
	fi
}

echo "== llmq ring benchmark: null engine, --null-delay-us 0, --batch-timeout-ms 0 =="
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo |
	head -n 1), kernel $(uname -r)"
echo "latency: $ITERS round trips after $WARMUP warm-up, one request in flight," \
	"CLOCK_MONOTONIC"
echo

"$LLMQD" --foreground --socket "$SOCK" --engine null --null-delay-us 0 \
	--batch-timeout-ms 0 2>"$TMP/llmqd.log" &
LLMQD_PID=$!
wait_for 5 test -S "$SOCK" || die "llmqd did not create $SOCK"

lat_args=(--iters "$ITERS" --warmup "$WARMUP")
for pl in "${PLACES[@]}"; do
	# shellcheck disable=SC2207	# no spaces in the words
	ca=($(client_args "$pl"))
	peer=()
	[[ $pl == cross ]] && peer=(--peer-cpu "$SRV_CPU")
	R[wake.$pl]=$(rb wake "${lat_args[@]}" "${ca[@]}" "${peer[@]}")
	saved=$(pin_server "$LLMQD_PID" "$pl")
	R[gen.$pl]=$(rb latency --socket "$SOCK" --op generate "${lat_args[@]}" "${ca[@]}")
	R[nop.$pl]=$(rb latency --socket "$SOCK" --op nop "${lat_args[@]}" "${ca[@]}")
	if [[ $pl == default ]]; then
		R[spin.$pl]=$(rb latency --socket "$SOCK" --op generate --spin "${lat_args[@]}")
	fi
	[[ $pl == default ]] || taskset -cp "$saved" "$LLMQD_PID" >/dev/null
done

TP=()
for c in 1 8 64; do
	TP+=("$(rb throughput --socket "$SOCK" --clients "$c" --seconds "$SECS" \
		--window "$WINDOW")")
done

# HTTP: Debian's nginx on a private configuration.
HTTP_SKIP=
NGINX=${BENCH_NGINX:-$(command -v nginx || true)}
if [[ -z $NGINX && -x /usr/sbin/nginx ]]; then
	NGINX=/usr/sbin/nginx
fi
if [[ $NGINX == none ]]; then
	NGINX=
	HTTP_SKIP="BENCH_NGINX=none"
elif [[ -z $NGINX ]]; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "bench-ring: installing nginx-light for the HTTP comparison" >&2
		if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			nginx-light >"$TMP/apt.log" 2>&1; then
			NGINX=/usr/sbin/nginx
		else
			tail -n 5 "$TMP/apt.log" >&2
			HTTP_SKIP="apt-get install nginx-light failed"
		fi
	else
		HTTP_SKIP="nginx is not installed and we are not root to install nginx-light"
	fi
fi

start_nginx() {
	local port=$1 d=$TMP/nginx

	mkdir -p "$d/www"
	printf 'ok\n' >"$d/www/hello.txt"
	cat >"$d/nginx.conf" <<-EOF
	daemon off;
	master_process off;
	worker_processes 1;
	pid $d/nginx.pid;
	error_log $d/error.log warn;
	events {
		worker_connections 64;
	}
	http {
		access_log off;
		default_type text/plain;
		keepalive_requests 1000000;
		keepalive_timeout 300s;
		client_body_temp_path $d/body;
		proxy_temp_path $d/proxy;
		fastcgi_temp_path $d/fastcgi;
		uwsgi_temp_path $d/uwsgi;
		scgi_temp_path $d/scgi;
		server {
			listen 127.0.0.1:$port;
			root $d/www;
		}
	}
	EOF
	"$NGINX" -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
	NGINX_PID=$!
	if wait_for 3 tcp_open "$port"; then
		return 0
	fi
	stop_pid "$NGINX_PID"
	NGINX_PID=
	return 1
}

if [[ -n $NGINX ]]; then
	PORT=
	for _ in $(seq 10); do
		p=$((20000 + RANDOM % 40000))
		tcp_open "$p" && continue	# someone is there already
		if start_nginx "$p"; then
			PORT=$p
			break
		fi
	done
	if [[ -z $PORT ]]; then
		cat "$TMP/nginx/error.log" >&2 2>/dev/null || true
		HTTP_SKIP="nginx did not start (see the error log above)"
	else
		NGINX_VER=$("$NGINX" -v 2>&1 | sed 's/.*\///')
		for pl in "${PLACES[@]}"; do
			# shellcheck disable=SC2207
			ca=($(client_args "$pl"))
			saved=$(pin_server "$NGINX_PID" "$pl")
			R[http.$pl]=$(rb http --port "$PORT" --path /hello.txt "${lat_args[@]}" \
				"${ca[@]}")
			[[ $pl == default ]] || taskset -cp "$saved" "$NGINX_PID" >/dev/null
		done
		stop_pid "$NGINX_PID"
		NGINX_PID=
	fi
fi

# row LABEL KEY: one latency row, if KEY was measured.
row() {
	local j=${R[$2]:-}

	[[ -n $j ]] || return 0
	printf '    %-46s %8s %8s %8s\n' "$1" "$(jget "$j" p50_us)" \
		"$(jget "$j" p99_us)" "$(jget "$j" mean_us)"
}

printf '%-50s %8s %8s %8s\n' "round trip, one client, one request at a time" \
	"p50 us" "p99 us" "mean us"
for pl in "${PLACES[@]}"; do
	echo "  ${PLACE_LABEL[$pl]}:"
	row "eventfd ping-pong, 2 processes (wake-up floor)" "wake.$pl"
	row "ring GENERATE, max_tokens=1, streamed" "gen.$pl"
	row "ring NOP" "nop.$pl"
	row "ring GENERATE, client spinning on the CQ" "spin.$pl"
	row "HTTP/1.1 GET keep-alive, nginx ${NGINX_VER:-}" "http.$pl"
done
[[ -n $HTTP_SKIP ]] && echo "  HTTP comparison skipped: $HTTP_SKIP"
echo

echo "throughput: GENERATE max_tokens=1 streamed, window $WINDOW per client process, ${SECS} s"
printf '  %7s %11s %11s %11s %12s %9s %10s %6s\n' clients requests/s tokens/s CQEs/s \
	"mean lat us" req/step CQEs/wake errors
for j in "${TP[@]}"; do
	printf '  %7s %11s %11s %11s %12s %9s %10s %6s\n' "$(jget "$j" clients)" \
		"$(jget "$j" requests_per_s)" "$(jget "$j" tokens_per_s)" \
		"$(jget "$j" cqes_per_s)" "$(jget "$j" mean_latency_us)" \
		"$(jget "$j" requests_per_step)" "$(jget "$j" cqes_per_wakeup)" \
		"$(jget "$j" errors)"
done
R1=$(jget "${TP[0]}" requests_per_s)
R64=$(jget "${TP[2]}" requests_per_s)
echo "  batching: 64 clients / 1 client = $(calc "$R64 / $R1")x requests/s"
echo

# mark COND: MET or MISSED.
mark() {
	awk "BEGIN { print ($1) ? \"MET\" : \"MISSED\" }"
}

echo "targets: ring GENERATE p50 < $TARGET_P50_US us; HTTP p50 / ring p50 >= ${TARGET_RATIO}x"
for pl in "${PLACES[@]}"; do
	ring=$(jget "${R[gen.$pl]}" p50_us)
	line=$(printf '  %-8s ring p50 %7s us: %-6s' "$pl" "$ring" \
		"$(mark "$ring < $TARGET_P50_US")")
	if [[ -n ${R[http.$pl]:-} ]]; then
		http=$(jget "${R[http.$pl]}" p50_us)
		ratio=$(calc "$http / $ring")
		line+=$(printf '   HTTP %7s us / ring = %6sx: %s' "$http" "$ratio" \
			"$(mark "$ratio >= $TARGET_RATIO")")
	fi
	echo "$line"
done
exit 0
