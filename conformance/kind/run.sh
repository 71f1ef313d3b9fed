#!/usr/bin/env bash
# krill's kind e2e (conformance/kind/README.md): a 3-node kind cluster, krill installed from
# `krill manifests --config conformance/kind/install.yaml`, kubelet switched to krill's CRI socket
# on every node by krill's own DaemonSet, a generated busybox image with a large random layer
# pushed through krill's proxy, a Deployment of it rolled out, and a per-node report of pull
# times and bytes by source. Needs a Docker engine, so CI does not run it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
HELPERS=$HERE/helpers.mjs

NAME=krill-e2e
KEEP=0
REUSE=0
REPLICAS=20
# 150 MB of incompressible data: large enough that where the bytes came from is worth a table.
LAYER_MB=150
TAG=0.1.0
BUILD=1
NODE_IMAGE=
IMAGE_TAG=run-$(date -u +%Y%m%d%H%M%S)
BUSYBOX=/bin/busybox
LOCAL_PORT=15000
# Long enough for three origins to start on a laptop and for 20 pods to pull 150 MB each way.
TIMEOUT=600

usage() {
  cat <<'EOF'
Usage: conformance/kind/run.sh [options]

Creates a 3-node kind cluster (conformance/kind/kind-config.yaml), builds the krill image
(scripts/images.sh) and loads it into the nodes, installs krill from conformance/kind/install.yaml,
waits until every kubelet uses krill's CRI socket, pushes a generated image through krill's proxy,
rolls out a Deployment of it and prints, for each node, the pull time and the bytes krill got from
peers, from the origins and through containerd. Deletes the cluster at the end unless --keep.

Options:
  --name NAME        kind cluster name (krill-e2e)
  --keep             leave the cluster running afterwards (kubectl --context kind-NAME ...)
  --reuse            use the existing cluster NAME instead of creating one (implies --keep)
  --replicas N       replicas of the demo Deployment (20)
  --layer-mb LIST    sizes in MB of the demo image's generated layers, comma separated (150)
  --tag T            the krill image's tag: scripts/images.sh --tag krill:T builds it (0.1.0)
  --skip-build       load an existing krill:T from the local Docker engine instead of building it
  --node-image IMG   kind node image for every node (default: the one pinned in kind-config.yaml)
  --image-tag T      the demo image's tag (run-<UTC time>: new on every run, so no node has it yet)
  --busybox PATH     a static busybox for the node's architecture (/bin/busybox, Debian's busybox-static)
  --proxy-port N     local port of `kubectl port-forward` to krill's proxy (15000)
  --timeout S        bound on each wait: rollouts, the kubelet switch (600)
  --help             this text
EOF
}

log() { printf '== %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'run.sh: %s (see --help)\n' "$*" >&2; exit 2; }

parse_args() {
  while (($#)); do
    case $1 in
      --name) NAME=${2:?}; shift ;;
      --keep) KEEP=1 ;;
      --reuse) REUSE=1; KEEP=1 ;;
      --replicas) REPLICAS=${2:?}; shift ;;
      --layer-mb) LAYER_MB=${2:?}; shift ;;
      --tag) TAG=${2:?}; shift ;;
      --skip-build) BUILD=0 ;;
      --node-image) NODE_IMAGE=${2:?}; shift ;;
      --image-tag) IMAGE_TAG=${2:?}; shift ;;
      --busybox) BUSYBOX=${2:?}; shift ;;
      --proxy-port) LOCAL_PORT=${2:?}; shift ;;
      --timeout) TIMEOUT=${2:?}; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage_error "unknown option $1" ;;
    esac
    shift
  done
  [[ $NAME =~ ^[a-z0-9][a-z0-9.-]*$ ]] || usage_error "--name must be a lowercase DNS name (got $NAME)"
  [[ $REPLICAS =~ ^[1-9][0-9]*$ ]] || usage_error "--replicas must be a positive integer (got $REPLICAS)"
  [[ $LAYER_MB =~ ^[0-9]+(\.[0-9]+)?(,[0-9]+(\.[0-9]+)?)*$ ]] || usage_error "--layer-mb must be sizes in MB, comma separated (got $LAYER_MB)"
  [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a number of seconds (got $TIMEOUT)"
  [[ $LOCAL_PORT =~ ^[1-9][0-9]*$ ]] || usage_error "--proxy-port must be a port (got $LOCAL_PORT)"
  [[ $IMAGE_TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || usage_error "--image-tag is not a valid tag (got $IMAGE_TAG)"
}

need() { command -v "$1" >/dev/null || die "$1 is missing: $2"; }

check_prerequisites() {
  need docker 'kind runs each node as a Docker container (https://docs.docker.com/engine/install/)'
  docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed): kind needs a running Docker engine"
  need kind 'install kind v0.24.0 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)'
  need kubectl 'install kubectl (https://kubernetes.io/docs/tasks/tools/)'
  need skopeo 'it pushes the demo image (Debian and Ubuntu: apt-get install skopeo)'
  need node 'Node.js 20 or later runs krill manifests and the helpers'
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || die "Node.js $(node --version) is too old: krill needs 20 or later"
  [[ -d $REPO/node_modules ]] || die "no $REPO/node_modules: run npm ci in $REPO first"
  [[ -f $BUSYBOX ]] || die "no busybox at $BUSYBOX: the demo image runs a static busybox (Debian and Ubuntu: apt-get install busybox-static; or --busybox PATH)"
  local v
  v=$(kind version 2>/dev/null || true)
  [[ $v == *v0.24.* ]] || printf 'run.sh: warning: %s; kind-config.yaml was written for kind v0.24.0 and its node images\n' "${v:-kind version failed}" >&2
}

k() { kubectl --context "kind-$NAME" "$@"; }

# wait_for WHAT SECONDS COMMAND...: runs COMMAND every 2 s until it succeeds, or fails after SECONDS.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 2
  done
}

WORK=
NS=
PF_PID=
CREATED=0
CLUSTER_UP=0
NODES=()

cleanup() {
  local rc=$?
  if [[ -n $PF_PID ]]; then kill "$PF_PID" 2>/dev/null || true; wait "$PF_PID" 2>/dev/null || true; fi
  if ((rc != 0 && CLUSTER_UP)); then collect_diagnostics || true; fi
  if ((CREATED && !KEEP)); then
    log "deleting kind cluster $NAME"
    kind delete cluster --name "$NAME" || true
  elif ((CLUSTER_UP)); then
    log "kept kind cluster $NAME: kubectl --context kind-$NAME get pods -A; delete it with: kind delete cluster --name $NAME"
  fi
  if [[ -n $WORK ]]; then
    rm -rf "$WORK/image"
    log "this run's files (manifests, metrics, pods, events; diagnostics after a failure): $WORK"
  fi
  exit "$rc"
}

# What a failed run leaves for reading: every pod, krill's node pods' logs, each kubelet's journal.
collect_diagnostics() {
  local d=$WORK/diagnostics node pod
  mkdir -p "$d"
  k get pods -A -o wide >"$d/pods.txt" 2>&1 || true
  k get events -A --sort-by=.lastTimestamp >"$d/events.txt" 2>&1 || true
  for pod in $(k -n "$NS" get pods -l app.kubernetes.io/component=node -o name 2>/dev/null); do
    k -n "$NS" logs "$pod" -c node --tail=300 >"$d/${pod#pod/}.node.log" 2>&1 || true
    k -n "$NS" logs "$pod" -c node-install --tail=300 >"$d/${pod#pod/}.node-install.log" 2>&1 || true
  done
  for node in "${NODES[@]}"; do
    docker exec "$node" journalctl -u kubelet --no-pager -n 300 >"$d/$node.kubelet.log" 2>&1 || true
  done
  log "diagnostics: $d"
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
    ((REUSE)) || die "a kind cluster named $NAME exists: pass --reuse to use it, or --name for another"
    log "reusing kind cluster $NAME"
  else
    ((REUSE)) && die "--reuse: no kind cluster named $NAME"
    log "creating kind cluster $NAME from $HERE/kind-config.yaml"
    local image=()
    [[ -n $NODE_IMAGE ]] && image=(--image "$NODE_IMAGE")
    kind create cluster --name "$NAME" --config "$HERE/kind-config.yaml" "${image[@]}" --wait "${TIMEOUT}s"
    CREATED=1
  fi
  CLUSTER_UP=1
  mapfile -t NODES < <(kind get nodes --name "$NAME" | sort)
  ((${#NODES[@]} > 0)) || die "kind cluster $NAME has no nodes"
  log "nodes: ${NODES[*]} ($(docker exec "${NODES[0]}" containerd --version | awk '{print $1, $3}'), kubelet $(docker exec "${NODES[0]}" kubelet --version | awk '{print $2}'))"
}

render_krill() {
  log "rendering krill's manifests: krill manifests --config conformance/kind/install.yaml (image tag $TAG)"
  KRILL_INSTALL_IMAGE__TAG=$TAG node "$REPO/cli/bin/krill.js" manifests --config "$HERE/install.yaml" >"$WORK/krill.yaml"
  read -r NS SOCKET AGENT_PORT PROXY_SERVICE PROXY_PORT KRILL_IMAGE SIDECAR_UID < <(node "$HELPERS" facts "$WORK/krill.yaml")
  ENDPOINT=unix://$SOCKET
  [[ $KRILL_IMAGE == "krill:$TAG" ]] || die "the manifests name the image $KRILL_IMAGE, not krill:$TAG (install.yaml's image.repository must be krill)"
  read -r DEMO_NS DEMO_NAME DEMO_IMAGE < <(node "$HELPERS" deployment-facts <(node "$HELPERS" deployment "$HERE/deployment.yaml" "$REPLICAS" "$IMAGE_TAG"))
  local mode
  read -r mode KRILL_REPO < <(node "$HELPERS" registry-rule "$WORK/krill.yaml" "$DEMO_IMAGE")
  # Only mode krill proves the pods' pulls went through krill: auto could fall back to containerd.
  [[ $mode == krill ]] || die "install.yaml gives ${DEMO_IMAGE%%/*} mode $mode: the demo's registry must be mode krill"
}

build_image() {
  if ((BUILD)); then
    log "building $KRILL_IMAGE: bash scripts/images.sh --tag $KRILL_IMAGE"
    bash "$REPO/scripts/images.sh" --tag "$KRILL_IMAGE"
  fi
  local user
  user=$(docker image inspect -f '{{.Config.User}}' "$KRILL_IMAGE" 2>/dev/null) || die "the local Docker engine has no image $KRILL_IMAGE (build it: bash scripts/images.sh --tag $KRILL_IMAGE)"
  # The node-install container edits kubelet's root-owned files and nsenters PID 1: it must run as
  # root. Without runAsUser it runs as the image's USER, and privileged gives a non-root user no
  # effective capabilities.
  [[ $SIDECAR_UID == - ]] && SIDECAR_UID=${user%%:*}
  [[ -z $SIDECAR_UID || $SIDECAR_UID == 0 || $SIDECAR_UID == root ]] ||
    die "the node-install container would run as uid $SIDECAR_UID (image USER $user, no runAsUser: 0 in the DaemonSet): it could not switch kubelet"
}

# With pullPolicy Never (install.yaml), the nodes' containerd is where the pods' image comes from.
load_image() {
  log "loading $KRILL_IMAGE into the nodes: kind load docker-image"
  kind load docker-image "$KRILL_IMAGE" --name "$NAME"
}

install_krill() {
  log "installing krill: kubectl apply -f $WORK/krill.yaml"
  k apply -f "$WORK/krill.yaml"
  local r
  for r in $(k -n "$NS" get statefulset,deployment,daemonset -o name); do
    k -n "$NS" rollout status "$r" --timeout="${TIMEOUT}s"
  done
}

kubelet_switched() {
  docker exec "$1" grep -qx "imageServiceEndpoint: $ENDPOINT" /var/lib/kubelet/config.yaml &&
    docker exec "$1" systemctl is-active --quiet kubelet
}

# krill's DaemonSet switches each kubelet itself (kind-config.yaml says why the cluster starts on
# containerd's socket); this waits until every node's kubelet runs with krill's socket.
wait_kubelet_switch() {
  local node
  for node in "${NODES[@]}"; do
    wait_for "krill's node-install sidecar to point kubelet on $node at $ENDPOINT" "$TIMEOUT" kubelet_switched "$node"
    docker exec "$node" crictl --image-endpoint "$ENDPOINT" imagefsinfo >/dev/null || die "$node: krill's socket $SOCKET does not answer ImageFsInfo"
    log "$node: kubelet uses $ENDPOINT"
  done
  k wait --for=condition=Ready node --all --timeout="${TIMEOUT}s"
  # A kubelet restart makes the node's pods report again; the daemon must still be Ready after it.
  k -n "$NS" rollout status daemonset/krill-node --timeout="${TIMEOUT}s"
}

proxy_answers() {
  node -e 'fetch(process.argv[1]).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' "http://127.0.0.1:$LOCAL_PORT/v2/"
}

push_image() {
  log "port-forwarding 127.0.0.1:$LOCAL_PORT to svc/$PROXY_SERVICE:$PROXY_PORT"
  k -n "$NS" port-forward "svc/$PROXY_SERVICE" "$LOCAL_PORT:$PROXY_PORT" >"$WORK/port-forward.log" 2>&1 &
  PF_PID=$!
  wait_for "kubectl port-forward to krill's proxy (log: $WORK/port-forward.log)" 60 proxy_answers
  log "generating the demo image: busybox and ${LAYER_MB} MB of random layers"
  node "$REPO/conformance/dist/bin/gen-image.js" --dir "$WORK/image" --tag "$IMAGE_TAG" --layer-mb "$LAYER_MB" --busybox "$BUSYBOX" --seed "kind-$IMAGE_TAG"
  IMAGE_BYTES=$(node "$HELPERS" layout-bytes "$WORK/image")
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"
  log "pushing it through krill's proxy: skopeo copy oci:…:$IMAGE_TAG docker://127.0.0.1:$LOCAL_PORT/$KRILL_REPO:$IMAGE_TAG"
  skopeo --policy "$WORK/policy.json" copy --dest-tls-verify=false --digestfile "$WORK/digest" \
    "oci:$WORK/image:$IMAGE_TAG" "docker://127.0.0.1:$LOCAL_PORT/$KRILL_REPO:$IMAGE_TAG"
  DIGEST=$(cat "$WORK/digest")
  kill "$PF_PID" 2>/dev/null || true
  wait "$PF_PID" 2>/dev/null || true
  PF_PID=
  log "pushed $DIGEST; the pods will pull $DEMO_IMAGE, a name only krill serves"
}

scrape_metrics() {
  local node
  mkdir -p "$WORK/metrics"
  for node in "${NODES[@]}"; do
    docker exec "$node" curl -sf "http://127.0.0.1:$AGENT_PORT/metrics" >"$WORK/metrics/$node.$1" || die "$node: no metrics from krill node on 127.0.0.1:$AGENT_PORT"
  done
}

roll_out_demo() {
  node "$HELPERS" deployment "$HERE/deployment.yaml" "$REPLICAS" "$IMAGE_TAG" >"$WORK/demo.yaml"
  k -n "$DEMO_NS" delete deployment "$DEMO_NAME" --ignore-not-found --wait >/dev/null 2>&1 || true
  scrape_metrics before
  log "rolling out $REPLICAS replicas of $DEMO_IMAGE"
  local started=$SECONDS
  k apply -f "$WORK/demo.yaml"
  k -n "$DEMO_NS" rollout status "deployment/$DEMO_NAME" --timeout="${TIMEOUT}s"
  log "all $REPLICAS replicas Ready $((SECONDS - started)) s after the apply"
  scrape_metrics after
  k -n "$DEMO_NS" get pods -l app=krill-demo -o json >"$WORK/pods.json"
  k -n "$DEMO_NS" get events -o json >"$WORK/events.json"
}

report() {
  log "per node: the longest pull kubelet reported, the PullImage calls krill answered, and the bytes those pulls got by source"
  node "$HELPERS" report --pods "$WORK/pods.json" --events "$WORK/events.json" --metrics-dir "$WORK/metrics" \
    --image "$DEMO_IMAGE" --digest "$DIGEST" --replicas "$REPLICAS" --image-bytes "$IMAGE_BYTES" ||
    die "the rollout is not what it should be (above)"
  log "OK: $REPLICAS pods Ready, every one running $DEMO_IMAGE at $DIGEST, pulled through krill"
}

main() {
  parse_args "$@"
  check_prerequisites
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/krill-kind.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  log "building krill (npx tsc -b)"
  (cd "$REPO" && npx tsc -b)
  render_krill
  build_image
  create_cluster
  load_image
  install_krill
  wait_kubelet_switch
  push_image
  roll_out_demo
  report
}

main "$@"
