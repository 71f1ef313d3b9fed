#!/usr/bin/env bash
# krill-node-install.sh: points this node's kubelet image service at krill's CRI socket, and
# optionally adds krill's node registry as containerd's hosts.toml mirror. Idempotent, reversible
# (--uninstall), --dry-run, --root for a different root, a --watchdog that reverts when krill's
# daemon stays down, and a kubelet boot guard. See install/node/README.md.
set -euo pipefail
umask 022

readonly MARK_BEGIN='# krill-node-install: begin'
readonly MARK_END='# krill-node-install: end'
readonly DROPIN_PATH=/etc/systemd/system/kubelet.service.d/90-krill-image-service.conf

ROOT=/
SOCKET=/run/krill/cri.sock
KUBELET_CONFIG=/var/lib/kubelet/config.yaml
KUBEADM_FLAGS=/var/lib/kubelet/kubeadm-flags.env
KUBELET_VERSION=
MANAGE_KUBELET=1
MIRROR=0
CONTAINERD_CONFIG=/etc/containerd/config.toml
MIRROR_URL=http://127.0.0.1:15005
MIRROR_REGISTRIES=_default
RESTART_CONTAINERD=0
STATE_DIR=/var/lib/krill/node-install
HOST_EXEC=()
# containerd answers ImageFsInfo in milliseconds; 5 s only has to cover a loaded node.
CHECK_TIMEOUT_MS=5000
WAIT_SECONDS=0
CHECK=1
# The watchdog reverts after FAILURES checks INTERVAL seconds apart (30 s by default): long enough
# to ride out a daemon restart, short enough that kubelet's retried pulls are not stuck for long.
INTERVAL=10
FAILURES=3
MODE=install
DRY_RUN=0
RESTART=1
COMMON_ARGS=()

usage() {
  cat <<'EOF'
Usage: krill-node-install.sh [options]                 install (the default)
       krill-node-install.sh --uninstall [options]     restore every file from its backup
       krill-node-install.sh --watchdog [options]      install when krill answers, revert when it stays down
       krill-node-install.sh --boot-guard [options]    revert without restarts when krill's socket is missing

Kubelet (on by default):
  --socket PATH            krill's CRI socket as the host sees it (/run/krill/cri.sock)
  --kubelet-config PATH    KubeletConfiguration, kubelet >= 1.27 (/var/lib/kubelet/config.yaml)
  --kubeadm-flags PATH     kubeadm's flags file, kubelet < 1.27 (/var/lib/kubelet/kubeadm-flags.env)
  --kubelet-version X.Y    instead of asking `kubelet --version`
  --no-kubelet             leave kubelet alone (mirror only)
containerd mirror (off by default):
  --containerd-mirror      add krill's node registry to containerd's hosts.toml directory
  --containerd-config PATH where the CRI's registry config_path is read (/etc/containerd/config.toml)
  --mirror-url URL         krill's node registry (http://127.0.0.1:15005)
  --mirror-registries A,B  registry hosts to mirror (default: _default, every registry without its own directory)
  --restart-containerd     restart containerd after changing hosts.toml (never needed: it is read on every pull)
General:
  --root DIR               act on the files under DIR (systemctl and kubelet still come from PATH or --host-exec)
  --state-dir PATH         backups and the list of changes (/var/lib/krill/node-install)
  --host-exec CMD          prefix of host commands, e.g. 'nsenter -t 1 -m -u -i -n -p --' in a container
  --check-timeout-ms N     bound of the ImageFsInfo check (5000)
  --wait SECONDS           install: wait up to this long for the socket to answer (0)
  --interval SECONDS       watchdog: seconds between checks (10)
  --failures N             watchdog: consecutive failed checks before reverting (3)
  --dry-run                print what would change, change nothing
Environment: KRILL_CLI, the command that runs `krill` (default: krill), used for `krill cri imagefsinfo`.
EOF
}

log() { printf 'krill-node-install: %s\n' "$*"; }
warn() { printf 'krill-node-install: warning: %s\n' "$*" >&2; }
die() { printf 'krill-node-install: %s\n' "$*" >&2; exit 1; }

# A host path as this process reaches it: under --root.
at() { printf '%s%s' "${ROOT%/}" "$1"; }
or_null() { if [[ -f $1 ]]; then printf '%s' "$1"; else printf /dev/null; fi; }
sha_of() { if [[ -f $1 ]]; then sha256sum <"$1" | cut -d' ' -f1; else printf -- '-'; fi; }
host_cmd() { if ((${#HOST_EXEC[@]} > 0)); then "${HOST_EXEC[@]}" "$@"; else "$@"; fi; }

parse_args() {
  local a
  # What the watchdog passes on to the installs and uninstalls it runs: everything but the mode.
  for a in "$@"; do case $a in --uninstall | --watchdog | --boot-guard) ;; *) COMMON_ARGS+=("$a") ;; esac; done
  while (($# > 0)); do
    case $1 in
      --socket) SOCKET=${2:?--socket needs a path}; shift ;;
      --kubelet-config) KUBELET_CONFIG=${2:?}; shift ;;
      --kubeadm-flags) KUBEADM_FLAGS=${2:?}; shift ;;
      --kubelet-version) KUBELET_VERSION=${2:?}; shift ;;
      --no-kubelet) MANAGE_KUBELET=0 ;;
      --containerd-mirror) MIRROR=1 ;;
      --containerd-config) CONTAINERD_CONFIG=${2:?}; shift ;;
      --mirror-url) MIRROR_URL=${2:?}; shift ;;
      --mirror-registries) MIRROR_REGISTRIES=${2:?}; shift ;;
      --restart-containerd) RESTART_CONTAINERD=1 ;;
      --root) ROOT=${2:?}; shift ;;
      --state-dir) STATE_DIR=${2:?}; shift ;;
      --host-exec) read -r -a HOST_EXEC <<<"${2:?}"; shift ;;
      --check-timeout-ms) CHECK_TIMEOUT_MS=${2:?}; shift ;;
      --wait) WAIT_SECONDS=${2:?}; shift ;;
      --interval) INTERVAL=${2:?}; shift ;;
      --failures) FAILURES=${2:?}; shift ;;
      --no-check) CHECK=0 ;;
      --uninstall) MODE=uninstall ;;
      --watchdog) MODE=watchdog ;;
      --boot-guard) MODE=boot-guard ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      *) printf 'krill-node-install: unknown option %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
    shift
  done
}

validate() {
  local p n url_re='^https?://[^[:space:]"\/]+(/[^[:space:]"\]*)?$' bad_re='[[:space:]"\|'"'"']'
  for p in "$SOCKET" "$KUBELET_CONFIG" "$KUBEADM_FLAGS" "$CONTAINERD_CONFIG" "$STATE_DIR"; do
    # These paths go unquoted into a systemd unit and into the list of changes.
    [[ $p == /* && ! $p =~ $bad_re ]] || die "not an absolute path without spaces, quotes or |: $p"
  done
  [[ -d $ROOT ]] || die "--root $ROOT is not a directory"
  for n in "$CHECK_TIMEOUT_MS" "$WAIT_SECONDS" "$INTERVAL" "$FAILURES"; do [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n"; done
  [[ $MIRROR_URL =~ $url_re ]] || die "--mirror-url must be an http(s) URL: $MIRROR_URL"
  [[ -z $KUBELET_VERSION || $KUBELET_VERSION =~ ^v?[0-9]+\.[0-9]+ ]] || die "--kubelet-version must be X.Y: $KUBELET_VERSION"
}

# ---- krill's socket ---------------------------------------------------------------------------

CHECK_ERROR=
check_socket() {
  local cli
  read -r -a cli <<<"${KRILL_CLI:-krill}"
  if CHECK_ERROR=$("${cli[@]}" cri --socket "$(at "$SOCKET")" imagefsinfo --timeout-ms "$CHECK_TIMEOUT_MS" 2>&1 >/dev/null); then return 0; fi
  CHECK_ERROR=${CHECK_ERROR:-the check failed}
  return 1
}

# Waits up to --wait seconds for the socket to answer ImageFsInfo.
socket_answers() {
  local deadline=$((SECONDS + WAIT_SECONDS))
  until check_socket; do ((SECONDS < deadline)) || return 1; sleep 1; done
}

# ---- file edits: each reads a file and prints the edited text -----------------------------------

# KubeletConfiguration (YAML): the top-level imageServiceEndpoint key.
kubelet_config_get() {
  awk '/^imageServiceEndpoint:/ { v = $0; sub(/^imageServiceEndpoint:[ \t]*/, "", v); sub(/[ \t]+#.*$/, "", v)
    gsub(/^["\047]|["\047]$/, "", v); print v; exit }' "$1"
}
# Sets the key to $2, or removes it when $2 is empty.
kubelet_config_set() {
  awk -v v="$2" '/^imageServiceEndpoint:/ { if (!done && v != "") print "imageServiceEndpoint: " v; done = 1; next }
    { print } END { if (!done && v != "") print "imageServiceEndpoint: " v }' "$1"
}

# kubeadm's flags file: --image-service-endpoint inside KUBELET_KUBEADM_ARGS="...".
flags_get() {
  awk '/^KUBELET_KUBEADM_ARGS=/ { n = split($0, w, /[ \t"]+/)
    for (i = 1; i <= n; i++) { if (w[i] ~ /^--image-service-endpoint=/) { sub(/^[^=]*=/, "", w[i]); print w[i]; exit }
      if (w[i] == "--image-service-endpoint") { print w[i + 1]; exit } } }' "$1"
}
# Sets the flag to $2, or removes it when $2 is empty (arguments are then single-space separated).
flags_set() {
  awk -v v="$2" '/^KUBELET_KUBEADM_ARGS="/ { body = substr($0, 23); sub(/"[ \t]*$/, "", body)
      n = split(body, w, /[ \t]+/); out = ""; skip = 0
      for (i = 1; i <= n; i++) {
        if (skip) { skip = 0; continue }
        if (w[i] == "" || w[i] ~ /^--image-service-endpoint=/) continue
        if (w[i] == "--image-service-endpoint") { skip = 1; continue }
        out = out (out == "" ? "" : " ") w[i] }
      if (v != "") out = out (out == "" ? "" : " ") "--image-service-endpoint=" v
      print "KUBELET_KUBEADM_ARGS=\"" out "\""; next }
    { print }' "$1"
}

# hosts.toml: krill's [host] table between two marker comments, before every other [host] table
# (containerd tries hosts in file order, then `server`; a file with no [host] table at all is
# rejected by containerd 1.6 and 1.7, so there always is one once krill's is in).
hosts_toml_add() {
  awk -v url="$2" -v b="$MARK_BEGIN" -v e="$MARK_END" '
    function block() { print b " (krill'\''s node registry, tried first; krill-node-install.sh --uninstall removes it)"
      print "[host.\"" url "\"]"; print "  capabilities = [\"pull\", \"resolve\"]"; print e; n++ }
    index($0, b) == 1 { skipping = 1; next }
    skipping { if (index($0, e) == 1) { skipping = 0; dropblank = 1 } next }
    dropblank { dropblank = 0; if ($0 ~ /^[ \t]*$/) next }
    !done && /^[ \t]*\[/ { block(); print ""; done = 1 }
    { print; last = $0; n++ }
    END { if (!done) { if (n > 0 && last !~ /^[ \t]*$/) print ""; block() } }' "$1"
}
hosts_toml_strip() {
  awk -v b="$MARK_BEGIN" -v e="$MARK_END" 'index($0, b) == 1 { skipping = 1; next }
    skipping { if (index($0, e) == 1) { skipping = 0; dropblank = 1 } next }
    dropblank { dropblank = 0; if ($0 ~ /^[ \t]*$/) next } { print }' "$1"
}

# The CRI's registry config_path in containerd's config.toml (config version 1, 2 or 3), first
# entry of a `:`-separated list, or nothing.
containerd_config_path() {
  awk 'function norm(s) { gsub(/["\047 \t]/, "", s); return s }
    /^[ \t]*\[/ { t = $0; sub(/^[ \t]*\[+/, "", t); sub(/\]+[ \t]*(#.*)?$/, "", t); table = norm(t); next }
    /^[ \t]*[A-Za-z0-9_."\047-]+[ \t]*=/ { k = $0; sub(/=.*/, "", k); k = norm(k); full = table == "" ? k : table "." k
      if (full == "plugins.io.containerd.grpc.v1.cri.registry.config_path" || full == "plugins.cri.registry.config_path" ||
          full == "plugins.io.containerd.cri.v1.images.registry.config_path") {
        v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*(#.*)?$/, "", v); gsub(/^["\047]|["\047]$/, "", v)
        split(v, parts, ":"); print parts[1]; exit } }' "$1"
}

# Undoes krill's edit of a file of `kind` in place, with the value the original ($3) had.
undo_edit() {
  case $1 in
    kubelet-config) kubelet_config_set "$2" "$(kubelet_config_get "$3")" ;;
    kubeadm-flags) flags_set "$2" "$(flags_get "$3")" ;;
    hosts-toml) hosts_toml_strip "$2" ;;
    *) cat "$2" ;;
  esac
}

# ---- the list of changes: <action> TAB <kind> TAB <sha256 krill wrote> TAB <host path> -----------

manifest() { printf '%s/manifest' "$(at "$STATE_DIR")"; }
manifest_entry() { if [[ -f $(manifest) ]]; then awk -F'\t' -v p="$1" '$4 == p' "$(manifest)"; fi; }
manifest_put() {
  local m tmp
  m=$(manifest)
  tmp=$(mktemp "$m.XXXXXX")
  { [[ -f $m ]] && awk -F'\t' -v p="$4" '$4 != p' "$m"; printf '%s\t%s\t%s\t%s\n' "$@"; } >"$tmp"
  mv -f "$tmp" "$m"
}

# Creates the state directory, listing the parents it had to create so --uninstall removes them.
ensure_state() {
  local d=$STATE_DIR missing=()
  [[ -d $(at "$STATE_DIR") ]] && return 0
  while d=$(dirname "$d") && [[ $d != / && ! -d $(at "$d") ]]; do missing=("$d" "${missing[@]}"); done
  mkdir -p "$(at "$STATE_DIR")/backup"
  for d in "${missing[@]}"; do manifest_put dir - - "$d"; done
}

# mkdir -p of a host directory, each directory it creates listed for --uninstall.
mkdir_tracked() {
  local d=$1 missing=()
  while [[ $d != / && ! -d $(at "$d") ]]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
  for d in "${missing[@]}"; do mkdir "$(at "$d")"; manifest_put dir - - "$d"; done
}

# Replaces a file's content atomically, keeping its mode and owner (or 0644 for a new file).
write_file() {
  local target=$1 tmp
  [[ ! -L $target ]] || die "$target is a symlink: refusing to replace it"
  tmp=$(mktemp "$(dirname "$target")/.krill-node-install.XXXXXX")
  if [[ -e $target ]]; then chmod --reference="$target" "$tmp"; chown --reference="$target" "$tmp" 2>/dev/null || true; else chmod 0644 "$tmp"; fi
  cat "$2" >"$tmp"
  mv -f "$tmp" "$target"
}

# ---- install ---------------------------------------------------------------------------------

WORK=
PLAN=()            # entries "<kind>|<host path>|<file with the new content>"
declare -A CHANGED # group (kubelet, dropin, containerd) -> 1 once a file of it changed

# Plans a change of host path $2 (of kind $1) to the content of file $3; nothing if equal.
plan() {
  local f
  f=$(at "$2")
  [[ -f $f ]] && cmp -s "$f" "$3" && return 0
  PLAN+=("$1|$2|$3")
}

group_of() { case $1 in hosts-toml) echo containerd ;; dropin) echo dropin ;; *) echo kubelet ;; esac; }

plan_kubelet() {
  local version minor file new=$WORK/kubelet endpoint="unix://$SOCKET" flag
  version=$KUBELET_VERSION
  if [[ -z $version ]]; then version=$(host_cmd kubelet --version 2>&1) || die "kubelet --version failed (use --kubelet-version X.Y): $version"; fi
  [[ $version =~ v?1\.([0-9]+) ]] || die "cannot read a kubelet version from: $version"
  minor=${BASH_REMATCH[1]}
  if ((minor >= 27)); then
    # 1.27 added KubeletConfiguration.imageServiceEndpoint (kubernetes PR #112136).
    file=$(at "$KUBELET_CONFIG")
    [[ -f $file ]] || die "kubelet $version: no KubeletConfiguration at $KUBELET_CONFIG"
    grep -q '^kind: *KubeletConfiguration' "$file" || die "$KUBELET_CONFIG is not a YAML KubeletConfiguration"
    if [[ -f $(at "$KUBEADM_FLAGS") ]]; then
      flag=$(flags_get "$(at "$KUBEADM_FLAGS")")
      # A flag overrides the config file: kubelet would not use what krill writes there.
      [[ -z $flag || $flag == "$endpoint" ]] || die "$KUBEADM_FLAGS sets --image-service-endpoint=$flag, which overrides $KUBELET_CONFIG: remove it first"
    fi
    kubelet_config_set "$file" "$endpoint" >"$new"
    plan kubelet-config "$KUBELET_CONFIG" "$new"
  else
    file=$(at "$KUBEADM_FLAGS")
    grep -q '^KUBELET_KUBEADM_ARGS="' "$file" 2>/dev/null || die "kubelet $version needs the --image-service-endpoint flag, but $KUBEADM_FLAGS has no KUBELET_KUBEADM_ARGS=\"...\" line: set the flag by hand"
    flags_set "$file" "$endpoint" >"$new"
    plan kubeadm-flags "$KUBEADM_FLAGS" "$new"
  fi
  cat >"$WORK/dropin" <<EOF
# Written by krill-node-install.sh (krill); its --uninstall removes it.
# /run is empty after a reboot, and a kubelet whose image service socket is missing refuses to
# start, so it would never start krill's own pod. Before each start, when krill's socket is
# missing, this puts kubelet back on containerd's image service (without restarting anything).
[Service]
ExecStartPre=-/bin/bash $STATE_DIR/krill-node-install.sh --boot-guard --socket $SOCKET --state-dir $STATE_DIR
EOF
  plan dropin "$DROPIN_PATH" "$WORK/dropin"
}

plan_mirror() {
  local config_path registry dir new file i=0 registries=()
  file=$(at "$CONTAINERD_CONFIG")
  [[ -f $file ]] || { log "no containerd config at $CONTAINERD_CONFIG: leaving containerd's mirrors alone"; return 0; }
  config_path=$(containerd_config_path "$file")
  if [[ -z $config_path ]]; then
    # Setting config_path would need a containerd restart, and 1.6 refuses it next to registry.mirrors.
    log "containerd's CRI registry config_path is not set in $CONTAINERD_CONFIG: leaving containerd's mirrors alone"
    return 0
  fi
  IFS=, read -r -a registries <<<"$MIRROR_REGISTRIES"
  for registry in "${registries[@]}"; do
    [[ $registry == _default || $registry =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || die "not a registry host: $registry"
    # containerd looks a registry up as `host_port_` (then `host:port`), then `_default` (hosts.go).
    dir=$config_path/${registry/:/_}
    [[ $registry == *:* ]] && dir+=_
    new=$WORK/hosts-$((i++))
    if [[ -f $(at "$dir/hosts.toml") ]]; then
      hosts_toml_add "$(at "$dir/hosts.toml")" "$MIRROR_URL" >"$new"
    else
      hosts_toml_base "$registry" >"$new.base"
      hosts_toml_add "$new.base" "$MIRROR_URL" >"$new"
    fi
    plan hosts-toml "$dir/hosts.toml" "$new"
  done
}

# A new hosts.toml: the registry itself stays `server`, so pulls still work while krill is down.
hosts_toml_base() {
  echo "# Written by krill-node-install.sh (krill); its --uninstall removes it."
  if [[ $1 == _default ]]; then
    echo "# Every registry without a directory of its own tries krill's node registry first, then"
    echo "# itself: without a \`server\` key containerd uses each registry's own default."
    return 0
  fi
  echo "# Pulls from $1 try krill's node registry first, then $1 itself."
  case $1 in
    docker.io) echo 'server = "https://registry-1.docker.io"' ;;
    localhost | localhost:* | 127.*) echo "server = \"http://$1\"" ;;
    *) echo "server = \"https://$1\"" ;;
  esac
}

# Copies this script to the state directory, where the boot guard runs it from.
install_self() {
  local copy
  copy=$(at "$STATE_DIR")/krill-node-install.sh
  cmp -s "${BASH_SOURCE[0]}" "$copy" 2>/dev/null && return 0
  write_file "$copy" "${BASH_SOURCE[0]}"
  chmod 0755 "$copy"
}

apply_plan() {
  local entry kind path new f group
  for entry in "${PLAN[@]}"; do
    IFS='|' read -r kind path new <<<"$entry"
    f=$(at "$path")
    group=$(group_of "$kind")
    CHANGED[$group]=1
    if ((DRY_RUN)); then
      log "would write $path:"
      diff -u --label "$path" --label "$path (krill)" "$(or_null "$f")" "$new" || true
      continue
    fi
    record "$kind" "$path" "$new"
    mkdir_tracked "$(dirname "$path")"
    write_file "$f" "$new"
    log "wrote $path"
  done
}

# Backs a file up (once) and lists it before it is first written.
record() {
  local kind=$1 path=$2 f entry action backup
  f=$(at "$path")
  backup=$(at "$STATE_DIR")/backup$path
  entry=$(manifest_entry "$path")
  if [[ -z $entry ]]; then
    action=created
    if [[ -e $f ]]; then action=modified; mkdir -p "$(dirname "$backup")"; cp -p "$f" "$backup"; fi
  else
    action=$(cut -f1 <<<"$entry")
    if [[ $action == modified && -f $f && $(sha_of "$f") != "$(cut -f3 <<<"$entry")" ]]; then
      # Rewritten since krill's last write (say by kubeadm upgrade): that file, without krill's
      # edit, is the original --uninstall restores now.
      warn "$path changed since krill wrote it: taking a new backup"
      undo_edit "$kind" "$f" "$backup" >"$WORK/rebackup"
      write_file "$backup" "$WORK/rebackup"
    fi
  fi
  manifest_put "$action" "$kind" "$(sha_of "$3")" "$path"
}

systemctl_run() {
  if ((DRY_RUN)); then log "would run: systemctl $*"; return 0; fi
  log "running: systemctl $*"
  host_cmd systemctl "$@"
}

# daemon-reload when the drop-in changed (it needs no restart: it acts on kubelet's next start);
# kubelet restarts only when its own files changed; containerd only when told to.
restart_units() {
  if [[ -n ${CHANGED[dropin]:-} ]]; then systemctl_run daemon-reload; fi
  if [[ -n ${CHANGED[kubelet]:-} ]]; then systemctl_run restart kubelet; fi
  if [[ -n ${CHANGED[containerd]:-} ]] && ((RESTART_CONTAINERD)); then systemctl_run restart containerd; fi
  return 0
}

do_install() {
  if ((MANAGE_KUBELET && CHECK)); then
    if ! socket_answers; then
      [[ -f $(manifest) ]] && warn "kubelet may still point at it from an earlier install: run --uninstall"
      die "refusing to point kubelet at $SOCKET: it does not answer CRI ImageFsInfo: $CHECK_ERROR"
    fi
  fi
  ((MANAGE_KUBELET)) && plan_kubelet
  ((MIRROR)) && plan_mirror
  if ((${#PLAN[@]} == 0)); then log "nothing to change"; return 0; fi
  if ((!DRY_RUN)); then ensure_state; ((MANAGE_KUBELET)) && install_self; fi
  apply_plan
  restart_units
}

# ---- uninstall -------------------------------------------------------------------------------

do_uninstall() {
  local entries=() action kind sha path f backup i
  [[ -f $(manifest) ]] || { log "nothing to uninstall: no $STATE_DIR/manifest"; return 0; }
  mapfile -t entries <"$(manifest)"
  for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
    IFS=$'\t' read -r action kind sha path <<<"${entries[i]}"
    [[ $action == dir ]] && continue
    f=$(at "$path")
    backup=$(at "$STATE_DIR")/backup$path
    if [[ $action == modified ]]; then
      if [[ -f $f && $(sha_of "$f") != "$sha" ]]; then
        # Changed since krill wrote it: keep the other change, take out only krill's.
        warn "$path changed since krill wrote it: removing only krill's edit"
        undo_edit "$kind" "$f" "$backup" >"$WORK/undo"
        revert_to "$kind" "$path" "$WORK/undo"
      else
        revert_to "$kind" "$path" "$backup"
      fi
    elif [[ -f $f ]]; then
      if [[ $kind == hosts-toml && $(sha_of "$f") != "$sha" ]]; then
        hosts_toml_strip "$f" >"$WORK/undo"
        if grep -qv '^[[:space:]]*\(#.*\)\?$' "$WORK/undo"; then warn "$path changed since krill wrote it: removing only krill's [host]"; revert_to "$kind" "$path" "$WORK/undo"; continue; fi
      fi
      CHANGED[$(group_of "$kind")]=1
      if ((DRY_RUN)); then log "would remove $path"; else rm -f "$f"; log "removed $path"; fi
    fi
  done
  if ((DRY_RUN)); then restart_units; return 0; fi
  rm -rf "$(at "$STATE_DIR")"
  for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
    IFS=$'\t' read -r action kind sha path <<<"${entries[i]}"
    [[ $action == dir ]] && { rmdir "$(at "$path")" 2>/dev/null || true; }
  done
  ((RESTART)) && restart_units
  log "uninstalled"
}

# Puts the content of file $3 back at host path $2 (cp -p: byte for byte, with mode and owner).
revert_to() {
  local f
  f=$(at "$2")
  [[ -f $f ]] && cmp -s "$3" "$f" && return 0
  CHANGED[$(group_of "$1")]=1
  if ((DRY_RUN)); then
    log "would restore $2:"
    diff -u --label "$2" --label "$2 (restored)" "$(or_null "$f")" "$3" || true
    return 0
  fi
  local tmp
  tmp=$(mktemp "$(dirname "$f")/.krill-node-install.XXXXXX")
  cp -p "$3" "$tmp"
  mv -f "$tmp" "$f"
  log "restored $2"
}

# ---- watchdog --------------------------------------------------------------------------------

# Runs this script again with the same options (a separate process, so a failure is reported and
# the watchdog goes on).
run_self() { bash "${BASH_SOURCE[0]}" "${COMMON_ARGS[@]}" "$@"; }

# Installs once the socket answers, re-applies on every healthy check (idempotent: it also puts
# back what someone else undid, say kubeadm upgrade rewriting config.yaml), reverts after
# FAILURES failed checks in a row and, after a revert, installs again only once the socket has
# answered FAILURES checks in a row (a crash-looping daemon does not restart kubelet every minute).
# SIGTERM or SIGINT (the pod is deleted, the node drains or shuts down) reverts and exits.
do_watchdog() {
  local failures=0 healthy=0 needed=1 stopping=0 installed=0 sleeper
  [[ -f $(manifest) ]] && installed=1
  trap 'stopping=1' TERM INT
  log "watchdog: checking $SOCKET every ${INTERVAL}s, reverting after $FAILURES failed checks in a row"
  while ((!stopping)); do
    if check_socket; then
      failures=0
      healthy=$((healthy + 1))
      if ((installed || healthy >= needed)); then
        if run_self --no-check; then installed=1; else warn "watchdog: install failed"; fi
      fi
    else
      failures=$((failures + 1))
      healthy=0
      if ((installed && failures >= FAILURES)); then
        warn "watchdog: $SOCKET failed $failures checks in a row ($CHECK_ERROR): switching kubelet back"
        if run_self --uninstall; then installed=0; needed=$FAILURES; fi
      fi
    fi
    ((stopping)) && break
    sleep "$INTERVAL" &
    sleeper=$!
    wait "$sleeper" || true
    kill "$sleeper" 2>/dev/null || true
  done
  log "watchdog: stopping; switching kubelet back to containerd"
  run_self --uninstall
}

main() {
  parse_args "$@"
  validate
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  case $MODE in
    install | uninstall)
      if ((!DRY_RUN)) && command -v flock >/dev/null; then
        # One install or uninstall at a time (the watchdog's and a hand-run one).
        mkdir -p "$(at /run/lock)"
        exec {lock}>"$(at /run/lock)/krill-node-install.lock"
        flock -w 60 "$lock" || die "another krill-node-install.sh holds $(at /run/lock)/krill-node-install.lock"
      fi
      "do_$MODE"
      ;;
    watchdog) do_watchdog ;;
    boot-guard)
      # Run by kubelet's ExecStartPre: no systemctl from inside a starting unit.
      if [[ -S $(at "$SOCKET") ]]; then exit 0; fi
      RESTART=0
      do_uninstall
      ;;
  esac
}

main "$@"
