# The one `krill` image every component runs (`krill <component> --config ...`), and the node
# DaemonSet's node-install container (`bash /opt/krill/install/node/krill-node-install.sh`).
# What it holds, its users and its size: install/README.md. Build it with `npm run images`.
#
# Both stages are the official Node image on the same Debian release, so the better-sqlite3
# addon compiled in the first runs against the same glibc and Node ABI in the second. The tags
# pin a Node release (20.20.2, the one the test suite runs on). To pin the exact bytes, look up
# each tag's digest (`docker buildx imagetools inspect node:20.20.2-bookworm-slim`, "Digest:",
# or `skopeo inspect --format '{{.Digest}}' docker://node:20.20.2-bookworm-slim`) and build with
#   --build-arg BUILD_DIGEST=@sha256:<digest of node:20.20.2-bookworm>
#   --build-arg RUNTIME_DIGEST=@sha256:<digest of node:20.20.2-bookworm-slim>
ARG NODE_VERSION=20.20.2
ARG DEBIAN_RELEASE=bookworm
ARG BUILD_DIGEST=
ARG RUNTIME_DIGEST=

# ---- build: npm ci (better-sqlite3 is compiled here), tsc -b, then the runtime tree in /out ----
FROM node:${NODE_VERSION}-${DEBIAN_RELEASE}${BUILD_DIGEST} AS build
# node-gyp needs python3, make and g++; the full node image (buildpack-deps) normally has them.
RUN if ! command -v python3 >/dev/null || ! command -v make >/dev/null || ! command -v g++ >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
# The manifests first, so the npm ci layer is reused while only sources change.
COPY package.json package-lock.json ./
COPY lib/package.json lib/
COPY proto/package.json proto/
COPY cluster-services/package.json cluster-services/
COPY cri-proxy/package.json cri-proxy/
COPY node-daemon/package.json node-daemon/
COPY cli/package.json cli/
COPY conformance/package.json conformance/
# node-gyp builds against the headers that come with this Node (in /usr/local/include/node)
# rather than downloading them.
ENV npm_config_nodedir=/usr/local
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx tsc -b && bash scripts/image-layout.sh /out

# ---- runtime ----
FROM node:${NODE_VERSION}-${DEBIAN_RELEASE}-slim${RUNTIME_DIGEST}
# The cluster services' user (cli/src/install/pod-parts.ts NON_ROOT_ID); 65532 is the uid that
# distroless and most minimal images call "nonroot". No home directory: nothing writes one.
RUN groupadd --gid 65532 krill \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin krill
# The layout: /opt/krill and the /usr/local/bin/krill symlink to /opt/krill/cli/bin/krill.js.
COPY --from=build /out/ /
# Fail the build, not a pod, when the runtime lacks what the components and the node install
# script use (awk, cmp, diff, flock, nsenter, sha256sum, ... come from Debian's required packages,
# mawk, diffutils, util-linux, coreutils), or when the addon does not load here.
RUN for c in bash awk cat chmod chown cmp cp cut diff dirname flock grep mkdir mktemp mv nsenter rm rmdir sed sha256sum sleep; do \
      command -v "$c" >/dev/null || { echo "runtime image lacks $c" >&2; exit 1; }; \
    done \
 && krill --help >/dev/null \
 && bash -n /opt/krill/install/node/krill-node-install.sh \
 && node -e "new (require('/opt/krill/node_modules/better-sqlite3'))(':memory:').close()"
# The pods mount an emptyDir on /tmp and run with a read-only root filesystem: SQLite and Node
# put their temporary files under TMPDIR. No NODE_ENV: krill reads none, and the tests run without.
ENV TMPDIR=/tmp
# The node DaemonSet overrides this with uid 0 (see install/README.md).
USER 65532:65532
ENTRYPOINT ["krill"]
CMD ["--help"]
