#!/usr/bin/env bash
# A dev FHIRcast cluster on loopback, for `make cluster`: one redis-server (AOF with
# appendfsync always, data in a temp dir), three hub nodes (hub-0..2) and two gateways
# (gw-0 on $LISTEN, gw-1 on the next free port), every one sharing one topic key and one
# dev-issuer key, so a token from either gateway's dev issuer works on both. Prints every
# process's address and pid and the walkthrough, then waits. Ctrl-C or SIGTERM stops what
# it started, by pid, gateways first, then hub nodes, then Redis, and deletes the temp dir
# (logs included). Dev-only: the dev issuer, no TLS, nothing bound beyond 127.0.0.1.
#
# Environment: LISTEN (default 127.0.0.1:8080), BIN_DIR (default target/release, where
# fhircast-gateway and fhircast-hub-node are), FHIRCAST_TOPIC_KEY (default: generated per
# run, at least 32 characters), RUST_LOG (the processes' log filter).
#
# It lives here rather than in the Makefile because the top level of the repository is
# fixed and a launcher with traps and loops is unreadable as a make recipe.

set -euo pipefail

LISTEN=${LISTEN:-127.0.0.1:8080}
BIN_DIR=${BIN_DIR:-target/release}
GATEWAY=$BIN_DIR/fhircast-gateway
NODE=$BIN_DIR/fhircast-hub-node
NODE_COUNT=3
# How long a process may take to start, and to stop before it is killed.
START_SECONDS=30
STOP_SECONDS=15

say() { printf '%s\n' "$*"; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
fail() { printf 'make cluster: %s\n' "$*" >&2; exit 1; }

# --- what is needed ---------------------------------------------------------------------
for tool in redis-server redis-cli openssl curl base64; do
  command -v "$tool" >/dev/null || fail "$tool is missing (make cluster installs redis-server, openssl and curl on Debian)"
done
for bin in "$GATEWAY" "$NODE"; do
  [[ -x $bin ]] || fail "$bin is missing: cargo build --release -p gateway -p hub-node --bins"
done
host=${LISTEN%:*}
gw0_port=${LISTEN##*:}
[[ $host == 127.0.0.1 ]] || fail "LISTEN=$LISTEN: the dev cluster binds 127.0.0.1 only (e.g. LISTEN=127.0.0.1:9090)"
if ! [[ $gw0_port =~ ^[0-9]+$ ]] || ((gw0_port < 1 || gw0_port > 65534)); then
  fail "LISTEN=$LISTEN: give a port from 1 to 65534"
fi
if port_in_use "$gw0_port"; then
  fail "$LISTEN is taken: make cluster LISTEN=127.0.0.1:<free port>"
fi
if [[ -n ${FHIRCAST_TOPIC_KEY:-} ]]; then
  ((${#FHIRCAST_TOPIC_KEY} >= 32)) || fail "FHIRCAST_TOPIC_KEY must be at least 32 characters"
fi

# --- process bookkeeping ----------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fhircast-cluster.XXXXXX")
NAMES=()   # in start order
declare -A PID=() ADDR=()
STOPPING=

# True while the process runs (a zombie, exited but not yet reaped, does not count).
alive() {
  local state
  [[ -r /proc/$1/stat ]] || return 1
  state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# Stops the named processes: SIGTERM to all of them, then waits for each (SIGKILL after
# STOP_SECONDS) and reaps it.
stop() {
  local name pid deadline
  for name in "$@"; do
    pid=${PID[$name]:-}
    if [[ -n $pid ]] && alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for name in "$@"; do
    pid=${PID[$name]:-}
    [[ -n $pid ]] || continue
    deadline=$((SECONDS + STOP_SECONDS))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid"; then
      say "  $name (pid $pid) did not stop within ${STOP_SECONDS}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    say "  stopped $name (pid $pid)"
    unset "PID[$name]"
  done
}

# Runs once, on any exit. Nothing may interrupt it: not a second Ctrl-C, not a failed
# write (stdout may be a pipe whose reader, e.g. tee, died with the same Ctrl-C).
shutdown_all() {
  [[ -n $STOPPING ]] && return
  STOPPING=1
  set +e
  trap '' INT TERM HUP PIPE
  local gateways=() nodes=() redis=() name
  for name in "${NAMES[@]}"; do
    case $name in
      gw-*) gateways+=("$name") ;;
      hub-*) nodes+=("$name") ;;
      redis) redis+=("$name") ;;
    esac
  done
  if ((${#NAMES[@]})); then say ""; say "stopping the dev cluster"; fi
  ((${#gateways[@]})) && stop "${gateways[@]}"
  ((${#nodes[@]})) && stop "${nodes[@]}"
  ((${#redis[@]})) && stop "${redis[@]}"
  rm -rf "$TMP"
  say "removed $TMP"
}

trap shutdown_all EXIT
trap 'exit 0' INT TERM HUP

# Starts a process named $1 with the rest as its command line; stdout to $TMP/$1.out,
# stderr to $TMP/$1.log. setsid puts it in a session of its own, so the terminal's Ctrl-C
# reaches only this script, which then stops everything in order.
launch() {
  local name=$1
  shift
  setsid "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" </dev/null &
  PID[$name]=$!
  NAMES+=("$name")
}

# Fails with the tail of a process's log.
died() {
  local name=$1
  {
    say "make cluster: $name did not start; the end of its log ($TMP/$name.log):"
    tail -n 20 "$TMP/$name.log" 2>/dev/null
    tail -n 5 "$TMP/$name.out" 2>/dev/null
  } >&2
  exit 1
}

# Waits until the command succeeds while process $1 runs; fails if it exits or the start
# time runs out.
await() {
  local name=$1 deadline=$((SECONDS + START_SECONDS))
  shift
  until "$@"; do
    alive "${PID[$name]}" || died "$name"
    ((SECONDS < deadline)) || { say "make cluster: $name is not ready after ${START_SECONDS}s" >&2; died "$name"; }
    sleep 0.1
  done
}

# The first line of $TMP/$1.out that starts with $2, without that prefix.
printed() { sed -n "s|^$2||p" "$TMP/$1.out" 2>/dev/null | head -n 1; }

# --- Redis --------------------------------------------------------------------------------
mkdir -p "$TMP/redis"
for _ in 1 2 3 4 5; do
  redis_port=$((20000 + RANDOM % 40000))
  port_in_use "$redis_port" && continue
  launch redis redis-server --bind 127.0.0.1 --port "$redis_port" --protected-mode yes \
    --dir "$TMP/redis" --appendonly yes --appendfsync always --save '' \
    --daemonize no --logfile "$TMP/redis.log"
  deadline=$((SECONDS + START_SECONDS))
  until [[ $(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]]; do
    alive "${PID[redis]}" || break
    ((SECONDS < deadline)) || died redis
    sleep 0.1
  done
  alive "${PID[redis]}" && break
  # The port was taken between the check and the bind: try another.
  wait "${PID[redis]}" 2>/dev/null || true
  unset "PID[redis]"
  NAMES=()
done
[[ -n ${PID[redis]:-} ]] || died redis
ADDR[redis]=redis://127.0.0.1:$redis_port

# --- shared secrets: the topic key and the dev issuer's key -------------------------------
if [[ -z ${FHIRCAST_TOPIC_KEY:-} ]]; then
  FHIRCAST_TOPIC_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
fi
# Given to the processes through the environment, never on a command line (ps shows those).
export FHIRCAST_TOPIC_KEY
export FHIRCAST_REDIS_URL=${ADDR[redis]}
(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
  -out "$TMP/dev-issuer-key.pem" 2>"$TMP/openssl.log") \
  || fail "openssl could not generate the dev issuer key: $(cat "$TMP/openssl.log")"

# --- hub nodes ----------------------------------------------------------------------------
for ((i = 0; i < NODE_COUNT; i++)); do
  launch "hub-$i" "$NODE" --node-id "hub-$i" --grpc-listen 127.0.0.1:0
done
for ((i = 0; i < NODE_COUNT; i++)); do
  await "hub-$i" grep -q '^listening grpc://' "$TMP/hub-$i.out"
  ADDR[hub-$i]=grpc://$(printed "hub-$i" 'listening grpc://')
done
live_nodes() {
  local count
  count=$(redis-cli -h 127.0.0.1 -p "$redis_port" zcard 'fhc:v1:{members}:node' 2>/dev/null) || return 1
  [[ $count == "$NODE_COUNT" ]]
}
await hub-0 live_nodes

# --- gateways -----------------------------------------------------------------------------
# Both pin the dev issuer's `iss` and the audience to gw-0's, and sign with the same key:
# a token minted by either is accepted by both.
gw0_url=http://$LISTEN
gw1_port=$((gw0_port + 1))
while port_in_use "$gw1_port"; do
  gw1_port=$((gw1_port + 1))
  ((gw1_port < 65536)) || fail "no free port after $gw0_port for the second gateway"
done
gateway_flags=(--dev-issuer --dev-issuer-key "$TMP/dev-issuer-key.pem"
  --dev-issuer-url "$gw0_url/dev-issuer" --audience "$gw0_url/api/hub")
launch gw-0 "$GATEWAY" --gateway-id gw-0 --listen "$LISTEN" "${gateway_flags[@]}"
launch gw-1 "$GATEWAY" --gateway-id gw-1 --listen "127.0.0.1:$gw1_port" "${gateway_flags[@]}"
for name in gw-0 gw-1; do
  await "$name" grep -q '^listening http://' "$TMP/$name.out"
  ADDR[$name]=http://$(printed "$name" 'listening http://')
  await "$name" curl -sf -o /dev/null "${ADDR[$name]}/readyz"
done

# --- what runs, and the walkthrough ---------------------------------------------------------
say ""
say "FHIRcast dev cluster (dev-only: dev issuer, plain HTTP, loopback only)"
for name in "${NAMES[@]}"; do
  printf '  %-6s %-28s pid %s\n' "$name" "${ADDR[$name]}" "${PID[$name]}"
done
say "  Redis: AOF with appendfsync always in $TMP/redis; logs: $TMP/<name>.log"
# gw-0's stdout: its `listening` line, then the walkthrough it prints with --dev-issuer.
tail -n +2 "$TMP/gw-0.out"
say ""
say "A second gateway, gw-1, serves the same hub at ${ADDR[gw-1]}/api/hub: a token from"
say "either dev issuer works on both, so you may subscribe through one and publish through the"
say "other (replace $gw0_url/api/hub with ${ADDR[gw-1]}/api/hub in step 2)."
say "Ctrl-C stops the gateways, then the hub nodes, then Redis, and deletes $TMP."

# --- wait -----------------------------------------------------------------------------------
# Returns when a process exits (it is reported; the rest keep running, so a node can be
# killed to watch another take over its topics) or when Ctrl-C/SIGTERM arrives.
while :; do
  exited=
  status=0
  wait -n -p exited || status=$?
  if [[ -z $exited ]]; then
    # 127: no child is left to wait for; otherwise a signal interrupted the wait.
    ((status != 127)) || { say "make cluster: every process has exited"; exit 1; }
    continue
  fi
  for name in "${NAMES[@]}"; do
    if [[ ${PID[$name]:-} == "$exited" ]]; then
      say "make cluster: $name (pid $exited) exited with status $status; the rest keep running"
      unset "PID[$name]"
    fi
  done
  [[ ${#PID[@]} -gt 0 ]] || { say "make cluster: every process has exited"; exit 1; }
done
