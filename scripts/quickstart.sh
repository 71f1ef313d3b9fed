#!/usr/bin/env bash
# The first Quickstart command: installs what krill needs, starts a local krill cluster
# (`krill devcluster`: 3 origins, a tracker, build-index, proxy, a node agent, a containerd of its
# own and a node daemon in front of it, each its own process on loopback), generates an OCI image,
# pushes it into krill with skopeo, pulls it peer-to-peer through each node's registry API and
# checks that every digest survived, then pulls it into containerd through krill's CRI socket
# (PullImage, as kubelet does) and lists it with ctr. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
work=$(mktemp -d /tmp/krill-quickstart.XXXXXX)
base_port=${KRILL_QUICKSTART_PORT:-15000}
node cli/bin/krill.js devcluster --dir "$work/cluster" --base-port "$base_port" >"$work/devcluster.out" 2>&1 &
cluster=$!
cleanup() { kill -TERM "$cluster" 2>/dev/null || true; wait "$cluster" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  grep -q 'devcluster is up' "$work/devcluster.out" && break
  kill -0 "$cluster" 2>/dev/null || { cat "$work/devcluster.out"; exit 1; }
  sleep 0.1
done
cat "$work/devcluster.out"
echo "== generating a 3-layer OCI image (about 60 MB) in $work/image"
node conformance/dist/bin/gen-image.js --dir "$work/image" --tag v1 --layer-mb 1,8,50
policy="$work/policy.json"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"
proxy="127.0.0.1:$base_port"
echo "== pushing it into krill: skopeo copy oci:$work/image:v1 docker://$proxy/quickstart/demo:v1"
skopeo --policy "$policy" copy --dest-tls-verify=false "oci:$work/image:v1" "docker://$proxy/quickstart/demo:v1"
skopeo --policy "$policy" inspect --tls-verify=false "docker://$proxy/quickstart/demo:v1" | head -20
for agent in 0; do
  node_registry="127.0.0.1:$((base_port + 5 + 10 * agent))"
  echo "== pulling it peer-to-peer through node $agent's registry API: skopeo copy docker://$node_registry/quickstart/demo:v1"
  skopeo --policy "$policy" copy --src-tls-verify=false "docker://$node_registry/quickstart/demo:v1" "oci:$work/pulled-$agent:v1"
  for blob in "$work"/image/blobs/sha256/*; do
    hex=$(basename "$blob")
    [ "$(sha256sum "$work/pulled-$agent/blobs/sha256/$hex" | cut -d' ' -f1)" = "$hex" ] || { echo "digest mismatch for $hex"; exit 1; }
  done
  echo "   bytes node $agent's agent received, by source:"
  node -e 'fetch(process.argv[1]).then((r) => r.text()).then((t) => { for (const m of t.matchAll(/^krill_agent_received_bytes\{source="(\w+)"[^}]*\} (\d+)/gm)) console.log(`     ${m[1].padEnd(12)} ${m[2]}`); })' "http://$node_registry/metrics"
done
cri_socket="$work/cluster/node-1/cri.sock"
containerd_socket="$work/cluster/containerd/containerd.sock"
echo "== pulling it into containerd through node 1's CRI socket (PullImage, as kubelet does), peer-to-peer from node 0 and the origins: $proxy/quickstart/demo:v1"
node cli/bin/krill.js cri --socket "$cri_socket" pull "$proxy/quickstart/demo:v1"
echo "== ctr --address $containerd_socket -n k8s.io images ls"
ctr --address "$containerd_socket" -n k8s.io images ls
echo "   bytes the node daemon's pull got, by source:"
node -e 'fetch(process.argv[1]).then((r) => r.text()).then((t) => { for (const m of t.matchAll(/^krill_node_pull_bytes_total\{source="(\w+)"[^}]*\} (\d+)/gm)) console.log(`     ${m[1].padEnd(12)} ${m[2]}`); })' "http://127.0.0.1:$((base_port + 15))/metrics"
echo "== OK: every blob came back through node 0 with the same sha256 digest, and containerd holds the image node 1 pulled through krill"
