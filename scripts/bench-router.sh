#!/usr/bin/env bash
# Benchmark of the canary router against nginx (split_clients + proxy_pass)
# and against calling the backend directly, in one run, with wrk.
#
#   scripts/bench-router.sh            # DURATION=10 RATE_CONNS=20 RATE_DELAY_MS=9 to tune
#
# Every target splits 90/10 between two instances of the same local backend
# (canary/fakemodel) by the X-Camera-Id header (1000 cameras), so any
# difference is the proxy's. The lookout router runs as in production: a
# rollout at 10%, the audit log in the local ClickHouse (database
# lookout_bench) and every prediction published to a dev Kafka broker.
# Two kinds of pass per target: peak throughput (32 connections, no pause), then a
# paced load near 2,000 req/s (RATE_CONNS connections each pausing
# RATE_DELAY_MS between requests; Debian's wrk has no fixed-rate mode).
# Prints a Markdown table: CPU per request of the proxy process(es) (and of the
# Kafka broker the router publishes to) is the steadiest figure on a shared
# machine; peak RSS is VmHWM from /proc. ROUTER_GOGC and ROUTER_GOMAXPROCS set
# the router's GOGC and GOMAXPROCS.
# TARGETS="lookout" measures only some targets (a cheaper check between
# full runs on a shared machine). Both kinds of pass run ROUNDS (2) times,
# interleaved across targets (so drifting background load falls on every
# target alike); the last table gives the means over the rounds. PASSES=paced
# runs only the light paced passes (the latency check at ~2,000 req/s).
# BASELINE=path/to/lookout adds the target "baseline": that build's router,
# set up the same way, to compare a change with the code it replaces, e.g.
#   git worktree add /tmp/base HEAD && (cd /tmp/base && go build -o /tmp/lookout-base ./cmd/lookout)
#   BASELINE=/tmp/lookout-base TARGETS="nginx lookout" PASSES=peak ROUNDS=6 scripts/bench-router.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RATE_CONNS=${RATE_CONNS:-20}
RATE_DELAY_MS=${RATE_DELAY_MS:-9}
TARGETS=${TARGETS:-direct nginx lookout}
ROUNDS=${ROUNDS:-2}
PASSES=${PASSES:-peak paced}
W=.lookout/bench-router
rm -rf "$W" && mkdir -p "$W"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v wrk >/dev/null && [ -x "$NGINX" ] || { echo "wrk and nginx are needed: run make setup" >&2; exit 1; }

go build -o "$W/lookout" ./cmd/lookout
go build -o "$W/fakemodel" ./canary/fakemodel
"$W/fakemodel" -listen 127.0.0.1:18601 & PIDS+=($!)
"$W/fakemodel" -listen 127.0.0.1:18602 & PIDS+=($!)

# nginx: same split by camera header, keepalive to the backends.
cat > "$W/nginx.conf" <<NGX
worker_processes auto;
pid $PWD/$W/nginx.pid;
error_log $PWD/$W/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $PWD/$W/nginx-body;
  proxy_temp_path $PWD/$W/nginx-proxy;
  upstream stable { server 127.0.0.1:18601; keepalive 128; }
  upstream canary { server 127.0.0.1:18602; keepalive 128; }
  split_clients "\${http_x_camera_id}" \$arm { 10% canary; * stable; }
  server {
    listen 127.0.0.1:18690;
    location / {
      proxy_pass http://\$arm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
"$NGINX" -c "$PWD/$W/nginx.conf" -p "$PWD/$W" & PIDS+=($!)
NGINX_PID=$!

# lookout routers with a 10% rollout: this tree's, and with BASELINE=path an
# older build as the extra target "baseline" (say, HEAD's, built from a git
# worktree), so a change is compared with what it replaces in the same run.
TOKEN=$("$W/lookout" token | awk '/^token:/{print $2}')
# router_yaml NAME PORT ADMIN_PORT DATABASE writes $W/NAME.yaml
router_yaml() {
	cat >"$W/$1.yaml" <<YAML
kafka: {brokers: [127.0.0.1:18692]}
clickhouse: {database: $4}
devkafka: {listen: 127.0.0.1:18692, data_dir: $PWD/$W/kafka}
auth:
  tokens: [{name: bench, sha256: $(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1), roles: [admin]}]
log: {level: warn}
canary:
  listen: 127.0.0.1:$2
  admin_listen: 127.0.0.1:$3
  backends:
    - {name: stable, url: "http://127.0.0.1:18601", version: v1}
    - {name: canary, url: "http://127.0.0.1:18602", version: v2}
  stable: stable
  rollout: {steps: [10], step_pause: 1h, interval: 1h}
YAML
	clickhouse-client --port 19000 -q "DROP DATABASE IF EXISTS $4"
}
# start_router BINARY NAME ADMIN_PORT → the router's pid, once it answers, with its rollout started
start_router() {
	GOGC=${ROUTER_GOGC:-100} GOMAXPROCS=${ROUTER_GOMAXPROCS:-$(nproc)} "$1" router -config "$W/$2.yaml" >"$W/$2.log" 2>&1 &
	local pid=$!
	for _ in $(seq 50); do curl -sf "http://127.0.0.1:$3/healthz" >/dev/null && break; sleep 0.2; done
	LOOKOUT_TOKEN=$TOKEN "$1" rollout -config "$W/$2.yaml" start -canary canary -reason bench >/dev/null
	echo "$pid"
}
router_yaml lookout 18680 18681 lookout_bench
"$W/lookout" devkafka -config "$W/lookout.yaml" >"$W/devkafka.log" 2>&1 & PIDS+=($!)
KAFKA_PID=$!
sleep 1
ROUTER_PID=$(start_router "$W/lookout" lookout 18681) && PIDS+=("$ROUTER_PID")
if [ -n "${BASELINE:-}" ]; then
	router_yaml baseline 18682 18683 lookout_bench_baseline
	BASELINE_PID=$(start_router "$BASELINE" baseline 18683) && PIDS+=("$BASELINE_PID")
	[[ " $TARGETS " == *" baseline "* ]] || TARGETS="$TARGETS baseline"
fi

cat > "$W/post.lua" <<'LUA'
local n = 0
local pace = tonumber(os.getenv("WRK_DELAY_MS") or "0")
wrk.method = "POST"
wrk.body = '{"instances":[{"image_uri":"file:///images/part.png"}]}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  wrk.headers["X-Camera-Id"] = "cam-" .. (n * 7919 % 1000)
  return wrk.format()
end
if pace > 0 then delay = function() return pace end end
LUA

# run TARGET_URL CONNS DELAY → "req/s p50 p99" (latencies in ms)
run() {
	local out
	out=$(WRK_DELAY_MS=$3 wrk -t2 -c"$2" -d"${DURATION}s" --latency -s "$W/post.lua" "$1/v1/models/m:predict")
	echo "$out" >>"$W/wrk.log"
	echo "$out" | awk '
		function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
		/^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /^Requests\/sec/ {rps=$2}
		/Non-2xx/ {bad=$NF} END {printf "%.0f %.3f %.3f %s\n", rps, p50, p99, bad+0}'
}
# cpu PID... → CPU milliseconds (user+system) used so far by those processes
cpu() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print ($14+$15)*10}' "/proc/$p/stat"))); done; echo "$s"; }
proxy_pids() {
	case $1 in
	direct) echo "" ;;
	nginx) echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
	lookout) echo "$ROUTER_PID" ;;
	baseline) echo "$BASELINE_PID" ;;
	esac
}
hwm() { awk '/VmHWM/{print $2/1024}' "/proc/$1/status"; }
nginx_hwm() { local s=0; for p in $(pgrep -P "$NGINX_PID") "$NGINX_PID"; do s=$(awk -v s="$s" '/VmHWM/{print s+$2/1024}' "/proc/$p/status"); done; echo "$s"; }

# warm up every path once
for u in http://127.0.0.1:18601 http://127.0.0.1:18690 http://127.0.0.1:18680 ${BASELINE:+http://127.0.0.1:18682}; do
	WRK_DELAY_MS=0 wrk -t1 -c8 -d2s -s "$W/post.lua" "$u/" >/dev/null
done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
url() {
	case $1 in
	direct) echo http://127.0.0.1:18601 ;;
	nginx) echo http://127.0.0.1:18690 ;;
	lookout) echo http://127.0.0.1:18680 ;;
	baseline) echo http://127.0.0.1:18682 ;;
	esac
}
# Peak passes: ROUNDS rounds, each target once per round, so a change in the
# machine's other load during the run falls on every target alike.
declare -A RPS CPU KCPU P50 P99 BAD
echo
echo "peak passes in the order run:"
echo
echo "| round | target | peak req/s | p50 ms | p99 ms | proxy CPU µs/req | broker CPU µs/req | load avg |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
	[[ " $PASSES " == *" peak "* ]] || break
	for t in $TARGETS; do
		if [ "$t" = lookout ] && [ "$round" = 1 ] && [ -n "${PROFILE:-}" ]; then
			# PROFILE=1: CPU profile of the router during its first peak pass → $W/router.cpu
			curl -s -H "Authorization: Bearer $TOKEN" -o "$W/router.cpu" \
				"http://127.0.0.1:18681/debug/pprof/profile?seconds=$((DURATION - 2))" &
		fi
		pids=$(proxy_pids "$t")
		c0=$(cpu $pids) k0=$(cpu "$KAFKA_PID")
		read -r prps pp50 pp99 pbad <<<"$(run "$(url "$t")" 32 0)"
		c1=$(cpu $pids) k1=$(cpu "$KAFKA_PID")
		# CPU per request is far steadier than req/s on a shared machine.
		pcpu=$(awk -v c=$((c1 - c0)) -v r="$prps" -v d="$DURATION" 'BEGIN{ if (c == 0) print "-"; else printf "%.0f", c*1000/(r*d) }')
		kcpu="-"
		[ "$t" = lookout ] || [ "$t" = baseline ] && kcpu=$(awk -v c=$((k1 - k0)) -v r="$prps" -v d="$DURATION" 'BEGIN{printf "%.0f", c*1000/(r*d)}')
		printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n" "$round" "$t" "$prps" "$pp50" "$pp99" "$pcpu" "$kcpu" "$(cut -d' ' -f1 /proc/loadavg)"
		RPS[$t]="${RPS[$t]:-} $prps" CPU[$t]="${CPU[$t]:-} $pcpu" KCPU[$t]="${KCPU[$t]:-} $kcpu"
		P50[$t]="${P50[$t]:-} $pp50" P99[$t]="${P99[$t]:-} $pp99" BAD[$t]=$((${BAD[$t]:-0} + pbad))
	done
done
r0() { if [ "$1" = - ]; then echo -; else printf "%.0f" "$1"; fi; }
mean() { echo "$*" | awk '{ s = 0; n = 0; for (i = 1; i <= NF; i++) if ($i != "-") { s += $i; n++ } if (n == 0) print "-"; else printf "%.6g", s / n }'; }
# Paced passes, interleaved the same way: p99 at ~2,000 req/s is what the
# machine's other load moves most.
declare -A PRPS PP50 PP99
echo
echo "paced passes in the order run:"
echo
echo "| round | target | paced req/s | p50 ms | p99 ms | load avg |"
echo "|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
	[[ " $PASSES " == *" paced "* ]] || break
	for t in $TARGETS; do
		read -r rrps rp50 rp99 rbad <<<"$(run "$(url "$t")" "$RATE_CONNS" "$RATE_DELAY_MS")"
		printf "| %s | %s | %s | %s | %s | %s |\n" "$round" "$t" "$rrps" "$rp50" "$rp99" "$(cut -d' ' -f1 /proc/loadavg)"
		PRPS[$t]="${PRPS[$t]:-} $rrps" PP50[$t]="${PP50[$t]:-} $rp50" PP99[$t]="${PP99[$t]:-} $rp99"
		BAD[$t]=$((${BAD[$t]:-0} + rbad))
	done
done
echo
echo "means over the rounds:"
echo
echo "| target | peak req/s | p50 ms | p99 ms | proxy CPU µs/req | broker CPU µs/req | paced req/s | paced p50 ms | paced p99 ms | non-2xx | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for t in $TARGETS; do
	case $t in
	direct) rss="-" ;;
	nginx) rss=$(nginx_hwm) ;;
	lookout) rss=$(hwm "$ROUTER_PID") ;;
	baseline) rss=$(hwm "$BASELINE_PID") ;;
	esac
	printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$t" "$(r0 "$(mean ${RPS[$t]:-})")" "$(mean ${P50[$t]:-})" \
		"$(mean ${P99[$t]:-})" "$(mean ${CPU[$t]:-})" "$(mean ${KCPU[$t]:-})" "$(r0 "$(mean ${PRPS[$t]:-})")" "$(mean ${PP50[$t]:-})" \
		"$(mean ${PP99[$t]:-})" "${BAD[$t]:-0}" "$rss"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "router events: $(curl -s http://127.0.0.1:18681/metrics | grep -E '^lookout_router_events_total' | tr '\n' ' ')"
echo "router split: $(curl -s http://127.0.0.1:18681/metrics | grep -E '^lookout_router_requests_total' | tr '\n' ' ')"
clickhouse-client --port 19000 -q "DROP DATABASE IF EXISTS lookout_bench"
clickhouse-client --port 19000 -q "DROP DATABASE IF EXISTS lookout_bench_baseline"
