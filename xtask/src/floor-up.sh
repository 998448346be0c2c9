#!/usr/bin/env bash
# The physical floor for `controlplane up`: start the same four servers in parallel
# (PostgreSQL after initdb, Redis, NATS with JetStream, OpenBao with raft storage,
# initialised and unsealed) and poll each every 10 ms until it answers a real
# request (polling faster only steals the CPU the servers need on two cores). No
# configuration checks, no state, no error handling: the least work bringing these
# four up can take on this machine. Used by `cargo xtask bench up`.
#
# usage: floor-up.sh DIR USER PG REDIS NATS NATS_MONITOR VAULT VAULT_CLUSTER PGBIN
set -eu
D=$1 U=$2 PG=$3 RP=$4 NP=$5 NM=$6 VP=$7 VC=$8 PGBIN=$9
mkdir -p "$D/pg" "$D/redis" "$D/nats" "$D/vault/data"
chown "$U" "$D/pg"
pids="$D/pids"
: > "$pids"

postgres_up() {
  setpriv --reuid="$U" --regid="$U" --clear-groups \
    "$PGBIN/initdb" -D "$D/pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
    --no-instructions > "$D/pg/initdb.log" 2>&1
  setpriv --reuid="$U" --regid="$U" --clear-groups \
    "$PGBIN/postgres" -D "$D/pg/data" -p "$PG" -k "$D/pg" -c listen_addresses=127.0.0.1 \
    > "$D/pg/log" 2>&1 &
  echo $! >> "$pids"
  until psql -h 127.0.0.1 -p "$PG" -U postgres -tAc 'select 1' > /dev/null 2>&1; do sleep 0.01; done
}

redis_up() {
  redis-server --port "$RP" --bind 127.0.0.1 --dir "$D/redis" --save '' > "$D/redis/log" 2>&1 &
  echo $! >> "$pids"
  until [ "$(redis-cli -p "$RP" ping 2> /dev/null)" = PONG ]; do sleep 0.01; done
}

nats_up() {
  nats-server -js -a 127.0.0.1 -p "$NP" -m "$NM" -sd "$D/nats" > "$D/nats/log" 2>&1 &
  echo $! >> "$pids"
  until curl -sf "http://127.0.0.1:$NM/healthz?js-enabled-only=true" > /dev/null; do sleep 0.01; done
}

vault_up() {
  cat > "$D/vault/config.hcl" <<HCL
disable_mlock = true
api_addr = "http://127.0.0.1:$VP"
cluster_addr = "http://127.0.0.1:$VC"
listener "tcp" {
  address = "127.0.0.1:$VP"
  cluster_address = "127.0.0.1:$VC"
  tls_disable = true
}
storage "raft" {
  path = "$D/vault/data"
  node_id = "floor"
  performance_multiplier = 1
}
HCL
  bao server -config="$D/vault/config.hcl" > "$D/vault/log" 2>&1 &
  echo $! >> "$pids"
  local a="http://127.0.0.1:$VP"
  until curl -s "$a/v1/sys/health" > /dev/null; do sleep 0.01; done
  local key
  key=$(curl -s -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "$a/v1/sys/init" \
    | sed -n 's/.*"keys":\["\([0-9a-f]*\)".*/\1/p')
  curl -s -X PUT -d "{\"key\":\"$key\"}" "$a/v1/sys/unseal" > /dev/null
  until curl -sf "$a/v1/sys/health" > /dev/null; do sleep 0.01; done
}

postgres_up & a=$!
redis_up & b=$!
nats_up & c=$!
vault_up & d=$!
wait $a $b $c $d
