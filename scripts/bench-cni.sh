#!/usr/bin/env bash
# Median CNI ADD and DEL latency of Romana's plugin against the reference ptp + host-local plugins, side by side in
# one run on this machine: one node namespace on a bridge running `romana daemon`, PODS pod namespaces per plugin,
# ADDs interleaved (Romana, reference, Romana, ...), then DELs interleaved. Each figure is the wall time of one
# plugin invocation as a runtime makes it from inside the node's namespace (fork, exec, config on stdin, result read),
# so both pay the same process start.
#
#   sudo scripts/bench-cni.sh [PODS]        (default 50; needs root, iproute2, containernetworking-plugins)
#
# Everything it creates (namespaces prefixed rmnb-, the daemon, a temp folder) is removed when it ends; with
# KEEP_BENCH=1 the folder stays, with the daemon's log (each request's time inside the daemon).
set -euo pipefail
pods="${1:-50}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
reference=/usr/lib/cni
[ "$(id -u)" = 0 ] || { echo "bench-cni: needs root (network namespaces)" >&2; exit 2; }
[ -x "$reference/ptp" ] && [ -x "$reference/host-local" ] || { echo "bench-cni: $reference/ptp or host-local missing: apt-get install containernetworking-plugins" >&2; exit 2; }

work="$(mktemp -d /tmp/romana-bench-cni.XXXXXX)"
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  for ns in $(ip netns list | awk '/^rmnb-/ {print $1}'); do ip netns del "$ns"; done
  [ -n "${KEEP_BENCH:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

echo "building romana and the plugin (Release, NativeAOT) ..."
dotnet build "$repo/Romana.Host" -c Release -o "$work/romana" >/dev/null
"$repo/scripts/install-cni.sh" "$work/cni" >/dev/null

ip netns add rmnb-sub
ip -n rmnb-sub link add br0 type bridge && ip -n rmnb-sub link set br0 up
ip netns add rmnb-node
ip -n rmnb-sub link add p-node type veth peer name eth0 netns rmnb-node
ip -n rmnb-sub link set p-node master br0 up
ip -n rmnb-node addr add 10.99.0.11/24 dev eth0 && ip -n rmnb-node link set eth0 up && ip -n rmnb-node link set lo up

sed -e "s#/var/lib/romana/romana.db#$work/romana.db#" -e "s#/run/romana/cni.sock#$work/cni.sock#" \
  "$repo/hocon/single-node.conf" > "$work/romana.conf"
ip netns exec rmnb-node "$work/romana/romana" daemon --config "$work/romana.conf" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 600); do [ -S "$work/cni.sock" ] && break; sleep 0.1; done
[ -S "$work/cni.sock" ] || { echo "bench-cni: the daemon did not start:" >&2; cat "$work/daemon.log" >&2; exit 1; }

romana_conf="{\"cniVersion\":\"1.0.0\",\"name\":\"romana\",\"type\":\"romana\",\"daemonSocket\":\"$work/cni.sock\"}"
ref_conf="{\"cniVersion\":\"1.0.0\",\"name\":\"reference\",\"type\":\"ptp\",\"ipMasq\":false,\"ipam\":{\"type\":\"host-local\",\"subnet\":\"100.65.0.0/16\",\"dataDir\":\"$work/host-local\"}}"

# invoke PLUGIN COMMAND ID POD CONFIG: prints the milliseconds one invocation took; a failure stops the run.
invoke() {
  local plugin=$1 command=$2 id=$3 pod=$4 config=$5 start end out
  start=$(date +%s%N)
  if ! out=$(echo "$config" | CNI_COMMAND="$command" CNI_CONTAINERID="$id" \
      CNI_NETNS="/var/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH="$work/cni:$reference" "$plugin"); then
    echo "bench-cni: $command $id with $(basename "$plugin") failed: $out" >&2; exit 1
  fi
  end=$(date +%s%N)
  awk -v ns=$((end - start)) 'BEGIN { printf "%.3f\n", ns / 1000000 }' 
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

measure() {
  for i in $(seq "$pods"); do
    invoke "$work/cni/romana" ADD "romana-$i" "rmnb-r$i" "$romana_conf" >> "$work/romana.add"
    invoke "$reference/ptp" ADD "ref-$i" "rmnb-p$i" "$ref_conf" >> "$work/ref.add"
  done
  for i in $(seq "$pods"); do
    invoke "$work/cni/romana" DEL "romana-$i" "rmnb-r$i" "$romana_conf" >> "$work/romana.del"
    invoke "$reference/ptp" DEL "ref-$i" "rmnb-p$i" "$ref_conf" >> "$work/ref.del"
  done
}

echo "$pods pods per plugin ..."
for i in $(seq "$pods"); do ip netns add "rmnb-r$i"; ip netns add "rmnb-p$i"; done
# The whole loop runs inside the node's namespace, as a runtime on that node would: `ip netns exec` per call would
# add its own ~4 ms (it remounts /sys) to both sides.
export pods work reference romana_conf ref_conf
export -f invoke measure
ip netns exec rmnb-node bash -c measure

p99() { sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; print v[i] }'; }
printf '%-28s %10s %10s\n' "median of $pods (ms)" ADD DEL
printf '%-28s %10s %10s\n' "romana" "$(median < "$work/romana.add")" "$(median < "$work/romana.del")"
printf '%-28s %10s %10s\n' "romana p99" "$(p99 < "$work/romana.add")" "$(p99 < "$work/romana.del")"
printf '%-28s %10s %10s\n' "ptp + host-local" "$(median < "$work/ref.add")" "$(median < "$work/ref.del")"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
