#!/usr/bin/env bash
# setup.sh prepares this machine for lookout's demo and tests: it installs what is
# missing (Debian packages, the ONNX Runtime library) and starts a loopback
# ClickHouse whose data lives under .lookout/. Safe to run any number of times:
# each step checks before it acts, and a running server is reused.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${LOOKOUT_STATE_DIR:-$ROOT/.lookout}"
ORT_VERSION="1.24.1"
ORT_LIB="$STATE/ort/libonnxruntime.so.1"
CH_HTTP_PORT="${LOOKOUT_CH_HTTP_PORT:-18123}"
CH_TCP_PORT="${LOOKOUT_CH_TCP_PORT:-19000}"
CH_DIR="$STATE/clickhouse"

log() { printf 'setup: %s\n' "$*" >&2; }

sudo_if_needed() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
	local missing=()
	command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || missing+=(clickhouse-server)
	command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
	command -v kcat >/dev/null || missing+=(kcat)
	command -v curl >/dev/null || missing+=(curl)
	command -v npm >/dev/null || missing+=(npm)
	command -v promtool >/dev/null || missing+=(prometheus)
	command -v docker-compose >/dev/null || missing+=(docker-compose)
	command -v chromium >/dev/null || missing+=(chromium)
	command -v chromedriver >/dev/null || missing+=(chromium-driver)
	command -v wrk >/dev/null || missing+=(wrk)
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
	# The preprocessing parity test compares with Pillow + NumPy.
	/usr/bin/python3 -c 'import PIL, numpy' 2>/dev/null || missing+=(python3-pil python3-numpy)
	# `lookout drift test` is cross-checked against scipy.
	/usr/bin/python3 -c 'import scipy' 2>/dev/null || missing+=(python3-scipy)
	if [ "$WANT_PYTHON_ONNX" = 1 ]; then
		/usr/bin/python3 -c 'import onnx' 2>/dev/null || missing+=(python3-onnx)
	fi
	if [ "${#missing[@]}" -eq 0 ]; then return; fi
	log "installing ${missing[*]}"
	sudo_if_needed apt-get update -qq
	sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The prometheus package starts a daemon on :9090 where systemd runs; we only need promtool.
}

fetch_ort() {
	if [ -s "$ORT_LIB" ]; then return; fi
	log "fetching ONNX Runtime $ORT_VERSION from the npm package onnxruntime-node"
	local tmp
	tmp="$(mktemp -d)"
	(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
	tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	mkdir -p "$(dirname "$ORT_LIB")"
	mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_LIB"
	rm -rf "$tmp"
}

clickhouse_ok() {
	[ "$(curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null)" = "Ok." ]
}

write_clickhouse_config() {
	mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas" "$CH_DIR/log"
	cat >"$CH_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$CH_DIR/log/server.log</log>
        <errorlog>$CH_DIR/log/error.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$CH_HTTP_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <max_connections>512</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
XML
	cat >"$CH_DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

start_clickhouse() {
	if clickhouse_ok; then
		log "ClickHouse already answering on 127.0.0.1:$CH_HTTP_PORT"
		return
	fi
	write_clickhouse_config
	log "starting ClickHouse (tcp 127.0.0.1:$CH_TCP_PORT, http :$CH_HTTP_PORT, data $CH_DIR/data)"
	setsid /usr/sbin/clickhouse-server --config-file="$CH_DIR/config.xml" \
		>"$CH_DIR/log/stdout.log" 2>&1 </dev/null &
	echo $! >"$CH_DIR/server.pid"
	for _ in $(seq 1 150); do
		if clickhouse_ok; then
			log "ClickHouse is up"
			return
		fi
		sleep 0.2
	done
	log "ClickHouse did not answer within 30 s; see $CH_DIR/log/"
	tail -n 20 "$CH_DIR/log/error.log" "$CH_DIR/log/stdout.log" >&2 || true
	exit 1
}

stop_clickhouse() {
	if [ -f "$CH_DIR/server.pid" ] && kill "$(cat "$CH_DIR/server.pid")" 2>/dev/null; then
		log "stopped ClickHouse (pid $(cat "$CH_DIR/server.pid"))"
	else
		log "no ClickHouse started by setup is running"
	fi
	rm -f "$CH_DIR/server.pid"
}

WANT_PYTHON_ONNX=0
case "${1:-}" in
--stop)
	stop_clickhouse
	exit 0
	;;
--python) WANT_PYTHON_ONNX=1 ;;
"") ;;
*)
	echo "usage: $0 [--python|--stop]" >&2
	exit 2
	;;
esac

install_packages
fetch_ort
start_clickhouse
