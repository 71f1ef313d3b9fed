#!/usr/bin/env bash
# Fetches Debian's containerd 1.7 (trixie) and 2.1 (sid) packages and unpacks each into
# .krill/containerd/<codename>/ (gitignored), so the tests can run all three versions side by side
# with the system's 1.6 in /usr/bin. Nothing is installed: apt runs with its own sources list, state
# and cache under .krill/apt/, so the system's apt lists, cache and dpkg database are never touched.
# Idempotent: a codename already unpacked is skipped. Run as root (apt's download sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.krill"
codenames=(trixie sid)

todo=()
for c in "${codenames[@]}"; do
  if [ -x "$root/containerd/$c/usr/bin/containerd" ]; then
    echo "fetch-containerd: $c already unpacked: $("$root/containerd/$c/usr/bin/containerd" --version)"
  else
    todo+=("$c")
  fi
done
[ ${#todo[@]} -eq 0 ] && exit 0

# The mirror the system's own Debian sources use (one-line .list or deb822 .sources), so this script
# reaches no host the machine does not already fetch packages from. Security and other archives
# (their path is not /debian) are skipped.
mirror=$(
  {
    cat /etc/apt/sources.list 2>/dev/null || true
    for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && cat "$f"; done
  } | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
)
mirror=$(printf '%s\n' "$mirror" | grep -E '^[a-z]+://[^ ]+/debian/?$' | head -n1 | sed 's:/*$::')
if [ -z "$mirror" ]; then
  echo "fetch-containerd: no Debian mirror found in /etc/apt/sources.list{,.d}" >&2
  exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

apt="$root/apt"
mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial" "$apt/etc"
: >"$apt/state/status"
: >"$apt/etc/sources.list"
for c in "${todo[@]}"; do
  echo "deb [signed-by=$keyring] $mirror $c main" >>"$apt/etc/sources.list"
done
# Every path apt reads or writes points into .krill/apt/ (or /dev/null), the dpkg status included:
# the candidate is then simply the newest version in the named suite, whatever the system has
# installed or pinned.
opts=(
  -o "Dir::Etc::SourceList=$apt/etc/sources.list"
  -o Dir::Etc::SourceParts=/dev/null
  -o Dir::Etc::Preferences=/dev/null
  -o Dir::Etc::PreferencesParts=/dev/null
  -o "Dir::State=$apt/state"
  -o "Dir::State::status=$apt/state/status"
  -o "Dir::Cache=$apt/cache"
  -o Acquire::Languages=none
  -o APT::Sandbox::User=root
)
echo "fetch-containerd: apt-get update for ${todo[*]} from $mirror (state in $apt)"
apt-get "${opts[@]}" update -qq

for c in "${todo[@]}"; do
  version=$(apt-cache "${opts[@]}" madison containerd | awk -v c="$c" '$0 ~ " "c"/main " { print $3; exit }')
  if [ -z "$version" ]; then
    echo "fetch-containerd: no containerd package in $c" >&2
    exit 1
  fi
  tmp=$(mktemp -d "$root/containerd-$c.XXXXXX")
  (cd "$tmp" && apt-get "${opts[@]}" download -qq "containerd=$version")
  deb=$(ls "$tmp"/containerd_*.deb)
  dpkg -x "$deb" "$tmp/root"
  mkdir -p "$root/containerd"
  rm -rf "$root/containerd/$c"
  mv "$tmp/root" "$root/containerd/$c"
  rm -rf "$tmp"
  echo "fetch-containerd: unpacked containerd $version ($c) into .krill/containerd/$c: $("$root/containerd/$c/usr/bin/containerd" --version)"
done
