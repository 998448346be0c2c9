#!/usr/bin/env bash
# The physical floor for a clustered `controlplane up`: three NATS servers routed to
# each other with JetStream and three OpenBao servers on raft with retry_join, all
# started in parallel; OpenBao's node 0 initialised, every node unsealed once it has
# joined, and polled every 10 ms until every NATS node is healthy (JetStream with a
# meta leader) and raft counts three voters. No configuration checks, no state, no
# error handling. Used by `cargo xtask bench cluster`.
#
# usage: floor-cluster.sh DIR NATS NATS_MONITOR NATS_CLUSTER VAULT VAULT_CLUSTER
# (node i listens on NATS+i, NATS_MONITOR+i, NATS_CLUSTER+i, VAULT+2i, VAULT_CLUSTER+2i,
# as controlplane's topology lays them out)
set -eu
D=$1 NP=$2 NM=$3 NC=$4 VP=$5 VC=$6
pids="$D/pids"
: > "$pids"

nats_up() {
  local i=$1 routes=""
  for j in 0 1 2; do
    [ "$j" = "$i" ] || routes="$routes nats-route://127.0.0.1:$((NC + j))"
  done
  mkdir -p "$D/nats-$i"
  cat > "$D/nats-$i/nats.conf" <<CONF
server_name: "floor-nats-$i"
listen: "127.0.0.1:$((NP + i))"
http: "127.0.0.1:$((NM + i))"
cluster {
  name: "floor"
  listen: "127.0.0.1:$((NC + i))"
  routes: [$(echo $routes | sed 's/ /, /g')]
}
jetstream { store_dir: "$D/nats-$i" }
CONF
  nats-server -c "$D/nats-$i/nats.conf" > "$D/nats-$i/log" 2>&1 &
  echo $! >> "$pids"
  until curl -sf "http://127.0.0.1:$((NM + i))/healthz" > /dev/null; do sleep 0.01; done
}

vault_conf() {
  local i=$1 joins=""
  for j in 0 1 2; do
    [ "$j" = "$i" ] || joins="$joins
  retry_join {
    leader_api_addr = \"http://127.0.0.1:$((VP + 2 * j))\"
  }"
  done
  mkdir -p "$D/vault-$i/data"
  cat > "$D/vault-$i/config.hcl" <<HCL
disable_mlock = true
api_addr = "http://127.0.0.1:$((VP + 2 * i))"
cluster_addr = "http://127.0.0.1:$((VC + 2 * i))"
listener "tcp" {
  address = "127.0.0.1:$((VP + 2 * i))"
  cluster_address = "127.0.0.1:$((VC + 2 * i))"
  tls_disable = true
}
storage "raft" {
  path = "$D/vault-$i/data"
  node_id = "floor-vault-$i"
  performance_multiplier = 1$joins
}
HCL
}

vault_up() {
  local a0="http://127.0.0.1:$VP" key token
  for i in 0 1 2; do
    vault_conf "$i"
    bao server -config="$D/vault-$i/config.hcl" > "$D/vault-$i/log" 2>&1 &
    echo $! >> "$pids"
  done
  until curl -s "$a0/v1/sys/health" > /dev/null; do sleep 0.01; done
  local init
  init=$(curl -s -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "$a0/v1/sys/init")
  key=$(echo "$init" | sed -n 's/.*"keys":\["\([0-9a-f]*\)".*/\1/p')
  token=$(echo "$init" | sed -n 's/.*"root_token":"\([^"]*\)".*/\1/p')
  curl -s -X PUT -d "{\"key\":\"$key\"}" "$a0/v1/sys/unseal" > /dev/null
  until curl -sf "$a0/v1/sys/health" > /dev/null; do sleep 0.01; done
  for i in 1 2; do
    local a="http://127.0.0.1:$((VP + 2 * i))"
    until curl -s -X PUT -d "{\"key\":\"$key\"}" "$a/v1/sys/unseal" | grep -q '"sealed":false'; do
      sleep 0.01
    done
  done
  until [ "$(curl -s -H "X-Vault-Token: $token" "$a0/v1/sys/storage/raft/configuration" \
    | grep -o '"voter":true' | wc -l)" = 3 ]; do
    sleep 0.01
  done
}

nats_up 0 & a=$!
nats_up 1 & b=$!
nats_up 2 & c=$!
vault_up & d=$!
wait $a $b $c $d
