#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-ring.sh: measure the llmq ring (round trip and throughput of the
# null engine at zero delay) under three wake-up configurations, beside the
# round trip of one HTTP/1.1 request to a loopback nginx, in one run, and
# compare them with the targets (ring p50 under 20 us with sleeping wake-ups,
# HTTP p50 at least 10x the ring's).
#
#   (a) llmqd --poll-us 0, client spin 0: sleeping wake-ups both ways (the
#       client rings the doorbell, llmqd writes the wake eventfd, each time)
#   (b) llmqd --poll-us POLL_US, client spin 0: llmqd polls before it
#       sleeps, the client sleeps on its wake eventfd (the defaults)
#   (c) llmqd --poll-us POLL_US, client spin SPIN_US: the client busy-waits
#       (llmq_set_spin()) before it sleeps
#
#   scripts/bench-ring.sh [BUILD_DIR]      (make bench-ring)
#
# Needs BUILD_DIR/bin/llmqd and BUILD_DIR/bin/llmq-ringbench.  Installs
# nginx-light when nginx is missing and we are root, else skips HTTP.
# Environment: ITERS (20000), WARMUP (1000), SECONDS_PER_RUN (3), WINDOW (4),
# POLL_US (50), SPIN_US (50), BENCH_NGINX (path of nginx to use, or "none"
# to skip the HTTP part).
set -euo pipefail

O=${1:-build}
RB=$O/bin/llmq-ringbench
LLMQD=$O/bin/llmqd
ITERS=${ITERS:-20000}
WARMUP=${WARMUP:-1000}
SECS=${SECONDS_PER_RUN:-3}
WINDOW=${WINDOW:-4}
POLL_US=${POLL_US:-50}
SPIN_US=${SPIN_US:-50}
TARGET_P50_US=20
TARGET_RATIO=10
CLIENTS=(1 8 64)

for b in "$RB" "$LLMQD"; do
	if [[ ! -x $b ]]; then
		echo "bench-ring: $b is missing; run make first" >&2
		exit 1
	fi
done

# The configurations: llmqd's --poll-us, the client's spin, and whether the
# client's wake-ups are sleeping ones (it blocks on the wake eventfd at once).
CFGS=(a b c)
declare -A CFG_POLL=([a]=0 [b]=$POLL_US [c]=$POLL_US)
declare -A CFG_SPIN=([a]=0 [b]=0 [c]=$SPIN_US)
declare -A CFG_SLEEPS CFG_CLIENT CFG_DESC
for cfg in "${CFGS[@]}"; do
	if ((CFG_SPIN[$cfg] == 0)); then
		CFG_SLEEPS[$cfg]=1
		CFG_CLIENT[$cfg]="sleeps"
	else
		CFG_SLEEPS[$cfg]=0
		CFG_CLIENT[$cfg]="spins ${CFG_SPIN[$cfg]} us"
	fi
done
CFG_DESC[a]="sleeping wake-ups both ways: doorbell and wake eventfd every request"
CFG_DESC[b]="llmqd polls ${POLL_US} us before sleeping; the client sleeps on its eventfd"
CFG_DESC[c]="llmqd polls ${POLL_US} us; the client spins ${SPIN_US} us, then sleeps"
[[ $POLL_US == 50 ]] && CFG_DESC[b]+=" (the defaults)"

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

# start_llmqd POLL_US: a fresh runtime on $SOCK.
start_llmqd() {
	"$LLMQD" --foreground --socket "$SOCK" --engine null --null-delay-us 0 \
		--batch-timeout-ms 0 --poll-us "$1" 2>"$TMP/llmqd.log" &
	LLMQD_PID=$!
	wait_for 5 test -S "$SOCK" || die "llmqd --poll-us $1 did not create $SOCK"
}

stop_llmqd() {
	stop_pid "$LLMQD_PID"
	LLMQD_PID=
	rm -f "$SOCK"
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
declare -A R			# R[what.placement] = ringbench latency JSON line
declare -A T			# T[config.clients] = ringbench throughput JSON line
declare -A CLIENT_CPU
PLACES=(default)
declare -A PLACE_LABEL=([default]="placement left to the scheduler")
declare -A PLACE_SHORT=([default]="scheduler")
if command -v taskset >/dev/null; then
	mapfile -t cpus < <(cpus_allowed)
	SRV_CPU=${cpus[0]}
	PLACES+=(same)
	CLIENT_CPU[same]=$SRV_CPU
	PLACE_LABEL[same]="server and client both on CPU $SRV_CPU"
	PLACE_SHORT[same]="same CPU $SRV_CPU"
	if ((${#cpus[@]} > 1)); then
		PLACES+=(cross)
		CLIENT_CPU[cross]=${cpus[1]}
		PLACE_LABEL[cross]="server on CPU $SRV_CPU, client on CPU ${cpus[1]}"
		PLACE_SHORT[cross]="CPU $SRV_CPU / CPU ${cpus[1]}"
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
echo "configurations (llmqd restarted for each; client spin set with llmq_set_spin()):"
for cfg in "${CFGS[@]}"; do
	printf '  (%s) llmqd --poll-us %-3s client spin %-6s %s\n' "$cfg" \
		"${CFG_POLL[$cfg]}," "${CFG_SPIN[$cfg]} us:" "${CFG_DESC[$cfg]}"
done
echo

lat_args=(--iters "$ITERS" --warmup "$WARMUP")
for pl in "${PLACES[@]}"; do
	# shellcheck disable=SC2207	# no spaces in the words
	ca=($(client_args "$pl"))
	peer=()
	[[ $pl == cross ]] && peer=(--peer-cpu "$SRV_CPU")
	R[wake.$pl]=$(rb wake "${lat_args[@]}" "${ca[@]}" "${peer[@]}")
done

for cfg in "${CFGS[@]}"; do
	start_llmqd "${CFG_POLL[$cfg]}"
	spin=(--spin-us "${CFG_SPIN[$cfg]}")
	for pl in "${PLACES[@]}"; do
		# shellcheck disable=SC2207
		ca=($(client_args "$pl"))
		saved=$(pin_server "$LLMQD_PID" "$pl")
		R[$cfg.$pl]=$(rb latency --socket "$SOCK" --op generate "${spin[@]}" \
			"${lat_args[@]}" "${ca[@]}")
		[[ $pl == default ]] || taskset -cp "$saved" "$LLMQD_PID" >/dev/null
	done
	for c in "${CLIENTS[@]}"; do
		T[$cfg.$c]=$(rb throughput --socket "$SOCK" --clients "$c" --seconds "$SECS" \
			--window "$WINDOW" "${spin[@]}")
	done
	stop_llmqd
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

# http_ratio KEY: HTTP p50 / KEY's p50 in the same placement, or "-".
http_ratio() {
	local h=${R[http.${1#*.}]:-}

	if [[ -z $h ]]; then
		echo "-"
		return
	fi
	echo "$(calc "$(jget "$h" p50_us) / $(jget "${R[$1]}" p50_us)")x"
}

# opt JSON KEY: the value of KEY, or "-" when the line has none.
opt() {
	local v

	v=$(jget "$1" "$2")
	echo "${v:--}"
}

# row LABEL CLIENT KEY: one latency row, if KEY was measured.
row() {
	local j=${R[$3]:-} ratio="-"

	[[ -n $j ]] || return 0
	[[ $3 == http.* ]] || ratio=$(http_ratio "$3")
	printf '    %-44s %-12s %7s %7s %7s %7s %6s %6s %9s\n' "$1" "$2" \
		"$(jget "$j" p50_us)" "$(jget "$j" p99_us)" "$(jget "$j" mean_us)" \
		"$(opt "$j" blocks_per_request)" "$(opt "$j" doorbells_per_request)" \
		"$(opt "$j" wakeups_per_request)" "$ratio"
}

printf '%-48s %-12s %7s %7s %7s %7s %6s %6s %9s\n' \
	"round trip, one client, one request at a time" client "p50 us" "p99 us" \
	"mean us" blocked bells wakes "HTTP/this"
for pl in "${PLACES[@]}"; do
	echo "  ${PLACE_LABEL[$pl]}:"
	row "eventfd ping-pong, 2 processes (wake floor)" sleeps "wake.$pl"
	for cfg in "${CFGS[@]}"; do
		row "($cfg) GENERATE max_tokens=1, poll ${CFG_POLL[$cfg]}, spin ${CFG_SPIN[$cfg]}" \
			"${CFG_CLIENT[$cfg]}" "$cfg.$pl"
	done
	row "HTTP/1.1 GET keep-alive, nginx ${NGINX_VER:-}" sleeps "http.$pl"
done
[[ -n $HTTP_SKIP ]] && echo "  HTTP comparison skipped: $HTTP_SKIP"
echo "  blocked: the client's voluntary context switches per round trip, how often it"
echo "  really slept (on one CPU its peer often preempts it instead, which is not"
echo "  counted); bells, wakes: llmqd's doorbell reads and wake eventfd writes per"
echo "  request; HTTP/this: HTTP p50 / this row's p50, same placement"
echo

# ratio64 CFG: requests/s at the most clients over requests/s at one.
ratio64() {
	calc "$(jget "${T[$1.${CLIENTS[-1]}]}" requests_per_s) / \
		$(jget "${T[$1.${CLIENTS[0]}]}" requests_per_s)"
}

echo "throughput: GENERATE max_tokens=1 streamed, window $WINDOW per client process," \
	"${SECS} s, placement left to the scheduler"
printf '  %-26s %-12s' "requests/s" client
for c in "${CLIENTS[@]}"; do
	printf ' %10s' "$c cl"
done
printf ' %8s\n' "${CLIENTS[-1]}/${CLIENTS[0]}"
for cfg in "${CFGS[@]}"; do
	printf '  %-26s %-12s' "($cfg) poll ${CFG_POLL[$cfg]}, spin ${CFG_SPIN[$cfg]}" \
		"${CFG_CLIENT[$cfg]}"
	for c in "${CLIENTS[@]}"; do
		printf ' %10s' "$(jget "${T[$cfg.$c]}" requests_per_s)"
	done
	printf ' %7sx\n' "$(ratio64 "$cfg")"
done
printf '  %-6s %7s %11s %11s %11s %12s %9s %10s %9s %9s %6s\n' config clients \
	requests/s tokens/s CQEs/s "mean lat us" req/step CQEs/wake bells/req wakes/req errors
for cfg in "${CFGS[@]}"; do
	for c in "${CLIENTS[@]}"; do
		j=${T[$cfg.$c]}
		printf '  %-6s %7s %11s %11s %11s %12s %9s %10s %9s %9s %6s\n' "($cfg)" \
			"$(jget "$j" clients)" "$(jget "$j" requests_per_s)" \
			"$(jget "$j" tokens_per_s)" "$(jget "$j" cqes_per_s)" \
			"$(jget "$j" mean_latency_us)" "$(jget "$j" requests_per_step)" \
			"$(jget "$j" cqes_per_wakeup)" "$(jget "$j" doorbells_per_request)" \
			"$(jget "$j" wakeups_per_request)" "$(jget "$j" errors)"
	done
done
echo

# mark COND: MET or MISSED.
mark() {
	awk "BEGIN { print ($1) ? \"MET\" : \"MISSED\" }"
}

echo "targets: ring GENERATE p50 < $TARGET_P50_US us with sleeping (eventfd) wake-ups;" \
	"HTTP p50 / ring p50 >= ${TARGET_RATIO}x"
echo "  (blocked/rt: how often the client really slept; a sleeping client whose answer"
echo "  is already there when it reaches poll() does not block)"
for cfg in "${CFGS[@]}"; do
	if ((CFG_SLEEPS[$cfg])); then
		wake="client wake-ups SLEEPING (eventfd)"
	else
		wake="client wake-ups NOT sleeping (spins ${CFG_SPIN[$cfg]} us first)"
	fi
	printf '  (%s) llmqd --poll-us %s, client spin %s us: %s; %s/%s clients %sx requests/s\n' \
		"$cfg" "${CFG_POLL[$cfg]}" "${CFG_SPIN[$cfg]}" "$wake" "${CLIENTS[-1]}" \
		"${CLIENTS[0]}" "$(ratio64 "$cfg")"
	for pl in "${PLACES[@]}"; do
		ring=$(jget "${R[$cfg.$pl]}" p50_us)
		verdict=$(mark "$ring < $TARGET_P50_US")
		if ((!CFG_SLEEPS[$cfg])); then
			# The target asks for sleeping wake-ups: spinning cannot meet it.
			if [[ $verdict == MET ]]; then
				verdict="n/a: under $TARGET_P50_US us by spinning"
			else
				verdict="MISSED, even spinning"
			fi
		fi
		line=$(printf '      %-14s ring p50 %7s us, blocked %5s/rt: %-28s' \
			"${PLACE_SHORT[$pl]}" "$ring" \
			"$(opt "${R[$cfg.$pl]}" blocks_per_request)" "$verdict")
		if [[ -n ${R[http.$pl]:-} ]]; then
			http=$(jget "${R[http.$pl]}" p50_us)
			ratio=$(calc "$http / $ring")
			line+=$(printf ' HTTP %7s us / ring = %7sx: %s' "$http" "$ratio" \
				"$(mark "$ratio >= $TARGET_RATIO")")
		fi
		echo "$line"
	done
done
exit 0
