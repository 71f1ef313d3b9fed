#!/usr/bin/env bash
# image-layout.sh OUT_DIR: assembles the runtime tree of the `krill` image under OUT_DIR, from a
# checkout where `npm ci` and `npx tsc -b` have run. The Dockerfile's build stage runs it and the
# final stage copies OUT_DIR over /; conformance/src/image.test.ts runs it into a temporary
# directory and runs the tree it gets, so what the test checks is what the image holds.
#
# OUT_DIR/opt/krill             the workspaces as in the checkout (<ws>/package.json, <ws>/dist),
#                               cli/bin, proto's .proto files, install/node, production node_modules
# OUT_DIR/usr/local/bin/krill   a symlink to /opt/krill/cli/bin/krill.js (the pods run `krill ...`)
#
# It reads only the checkout and its installed node_modules: no network.
set -euo pipefail

die() { printf 'image-layout: %s\n' "$*" >&2; exit 1; }

(($# == 1)) || die "usage: image-layout.sh OUT_DIR"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$1
DEST=$OUT/opt/krill
# The workspaces, in the order of the root package.json's "workspaces".
WORKSPACES=(lib proto cluster-services cri-proxy node-daemon cli conformance)

[[ ! -e $DEST ]] || die "$DEST exists: give an empty or new OUT_DIR"
[[ -f $SRC/node_modules/.package-lock.json ]] || die "no node_modules in $SRC: run npm ci first"
for ws in "${WORKSPACES[@]}"; do
  [[ -d $SRC/$ws/dist ]] || die "no $ws/dist: run npx tsc -b first"
done

mkdir -p "$DEST"
cp "$SRC/package.json" "$DEST/"

# Compiled JavaScript only: no TypeScript declarations, source maps (the sources they point at
# are not in the image) or build info, and no tests (tsconfig excludes them; a stale dist/ from
# an older configuration could still hold some).
for ws in "${WORKSPACES[@]}"; do
  mkdir -p "$DEST/$ws"
  cp "$SRC/$ws/package.json" "$DEST/$ws/"
  (cd "$SRC/$ws" && find dist -type f -name '*.js' ! -name '*.test.js' -print0 | xargs -0 cp --parents -t "$DEST/$ws")
done
cp -a "$SRC/cli/bin" "$DEST/cli/"

# The .proto files are read at run time: @krill/proto loads them from proto/ (PROTO_ROOT), and
# @krill/lib's wire messages from proto/krill/p2p/v1/wire.proto.
(cd "$SRC/proto" && find . -path ./dist -prune -o -path ./node_modules -prune -o -type f -name '*.proto' -print0 |
  xargs -0 cp --parents -t "$DEST/proto")

# The node install script, run by the node DaemonSet's node-install container.
mkdir -p "$DEST/install"
cp -a "$SRC/install/node" "$DEST/install/"

# Production dependencies: every package `npm ls --omit=dev` finds in the installed tree, each
# copied without its own node_modules (the nested packages it needs are listed separately).
# npm ls fails when the installed tree does not match package-lock.json.
packages=$(cd "$SRC" && npm ls --all --omit=dev --parseable) || die "npm ls --omit=dev failed: run npm ci"
count=0
while IFS= read -r dir; do
  rel=${dir#"$SRC"/}
  [[ $rel == "$dir" || $rel != *node_modules/* ]] && continue # the root and the workspaces
  [[ $rel == node_modules/@krill/* ]] && continue              # the workspaces' links, made below
  # Type declarations only (@types/node comes in through @types/tar-stream): nothing loads them.
  [[ $rel == node_modules/@types/* ]] && continue
  [[ -L $dir ]] && die "unexpected symlinked package $rel"
  mkdir -p "$DEST/$rel"
  find "$dir" -mindepth 1 -maxdepth 1 ! -name node_modules -exec cp -a -t "$DEST/$rel" {} +
  count=$((count + 1))
done < <(sort -u <<<"$packages")

# Type declarations and source maps of the dependencies (about 25 MB, most of it
# kubernetes-models'): Node never reads a .d.ts, and reads a .map only under --enable-source-maps,
# where a missing one is skipped. Licenses, READMEs and every .js/.json/.wasm stay as published.
find "$DEST/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.[cm]ts' \
  -o -name '*.js.map' -o -name '*.[cm]js.map' -o -name '*.d.ts.map' -o -name '*.d.[cm]ts.map' \) -delete

# The workspaces' own links, relative as npm made them (node_modules/@krill/cli -> ../../cli).
mkdir -p "$DEST/node_modules/@krill"
for link in "$SRC"/node_modules/@krill/*; do
  target=$(readlink "$link")
  [[ $target != /* ]] || die "$link is an absolute symlink; expected a relative one"
  ln -s "$target" "$DEST/node_modules/@krill/$(basename "$link")"
done

# better-sqlite3 is compiled at install (node-gyp): keep the addon it loads through `bindings`
# (build/Release/better_sqlite3.node) and drop the SQLite amalgamation, the C++ sources and the
# object files, 26 MB the runtime never reads.
bs=$DEST/node_modules/better-sqlite3
[[ -f $bs/build/Release/better_sqlite3.node ]] || die "better-sqlite3 has no build/Release/better_sqlite3.node: its install script did not build it"
mv "$bs/build/Release/better_sqlite3.node" "$bs/better_sqlite3.node.keep"
rm -rf "$bs/build" "$bs/deps" "$bs/src" "$bs/binding.gyp"
mkdir -p "$bs/build/Release"
mv "$bs/better_sqlite3.node.keep" "$bs/build/Release/better_sqlite3.node"

# Root owns the tree (the image's COPY) and the cluster services run as uid 65532: everything
# must be readable, and directories and programs searchable, by others, whatever the umask of the
# checkout it came from. Nothing is writable but by root.
chmod -R u=rwX,go=rX "$DEST"

mkdir -p "$OUT/usr/local/bin"
ln -s /opt/krill/cli/bin/krill.js "$OUT/usr/local/bin/krill"

printf 'image-layout: %s: %s packages, %s\n' "$OUT" "$count" "$(du -sh "$DEST" | cut -f1)"
