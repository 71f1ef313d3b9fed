#!/usr/bin/env bash
# images.sh (npm run images): builds the one `krill` image from ./Dockerfile with the first image
# builder that works here: docker (when `docker info` reaches an engine), else podman, else
# buildah. Exits 2 when there is none. See install/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: npm run images -- [options]      (or bash scripts/images.sh [options])

  --tag REF             the image reference to build (default: krill:<version of package.json>)
  --push                push REF after building (REF must then name a registry: registry.example/krill:0.1.0)
  --platform P[,P...]   target platform(s), e.g. linux/amd64 or linux/amd64,linux/arm64; more than
                        one needs --push with docker (buildx), and makes a manifest list with podman and buildah
  --build-arg K=V       passed to the build (repeatable), e.g. RUNTIME_DIGEST=@sha256:...
  -h, --help            this text

Builders, first one that works: docker (docker info must succeed), podman, buildah.
EOF
}

die() { printf 'images: %s\n' "$1" >&2; exit "${2:-1}"; }

ROOT=$(cd "${BASH_SOURCE[0]%/*}/.." && pwd)
TAG=
PUSH=0
PLATFORM=
BUILD_ARGS=()
while (($# > 0)); do
  case $1 in
    --tag) TAG=${2:?--tag needs an image reference}; shift ;;
    --push) PUSH=1 ;;
    --platform) PLATFORM=${2:?--platform needs a platform}; shift ;;
    --build-arg) BUILD_ARGS+=(--build-arg "${2:?--build-arg needs K=V}"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'images: unknown option %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [[ -z $TAG ]]; then
  TAG=krill:$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).version' "$ROOT/package.json")
fi
MULTI=0
[[ $PLATFORM == *,* ]] && MULTI=1

# `docker info` fails when the CLI is installed but no engine answers (no daemon, no socket
# access); 30 s bounds it when DOCKER_HOST points at a host that does not answer.
builder=
if command -v docker >/dev/null && timeout 30 docker info >/dev/null 2>&1; then
  builder=docker
elif command -v podman >/dev/null; then
  builder=podman
elif command -v buildah >/dev/null; then
  builder=buildah
else
  why=absent
  command -v docker >/dev/null && why="present, but \`docker info\` failed: no engine answers"
  die "no image builder: looked for docker (${why}), podman and buildah on PATH. Install one, or start the docker engine, and run again." 2
fi

common=(--file "$ROOT/Dockerfile" --tag "$TAG" "${BUILD_ARGS[@]}")
[[ -n $PLATFORM ]] && common+=(--platform "$PLATFORM")
printf 'images: building %s with %s%s\n' "$TAG" "$builder" "${PLATFORM:+ for $PLATFORM}"

case $builder in
  docker)
    if ((MULTI)); then
      # A multi-platform image cannot be loaded into the engine's image store, only pushed.
      ((PUSH)) || die "docker: more than one --platform needs --push (buildx pushes the manifest list)" 2
      docker buildx build "${common[@]}" --push "$ROOT"
    else
      docker build "${common[@]}" "$ROOT"
      ((PUSH)) && docker push "$TAG"
    fi
    ;;
  podman | buildah)
    if ((MULTI)); then
      # --manifest collects one image per platform into a manifest list named TAG.
      common=(--file "$ROOT/Dockerfile" --manifest "$TAG" --platform "$PLATFORM" "${BUILD_ARGS[@]}")
      if [[ $builder == podman ]]; then podman build "${common[@]}" "$ROOT"; else buildah bud "${common[@]}" "$ROOT"; fi
      ((PUSH)) && "$builder" manifest push --all "$TAG" "docker://$TAG"
    else
      if [[ $builder == podman ]]; then podman build "${common[@]}" "$ROOT"; else buildah bud "${common[@]}" "$ROOT"; fi
      ((PUSH)) && "$builder" push "$TAG"
    fi
    ;;
esac

# The size the builder reports for the image (uncompressed, base layers included).
if ((MULTI)); then
  printf 'images: built %s for %s (a manifest list: sizes are per platform, see the registry)\n' "$TAG" "$PLATFORM"
else
  case $builder in
    docker | podman) bytes=$("$builder" image inspect --format '{{.Size}}' "$TAG") ;;
    buildah) bytes=$(buildah inspect --type image --format '{{.Size}}' "$TAG" 2>/dev/null || true) ;;
  esac
  if [[ ${bytes:-} =~ ^[0-9]+$ ]]; then
    printf 'images: built %s: %s bytes (%s MB) uncompressed\n' "$TAG" "$bytes" "$((bytes / 1000000))"
  else
    printf 'images: built %s\n' "$TAG"
    [[ $builder == buildah ]] && buildah images "$TAG"
  fi
fi
((PUSH)) && printf 'images: pushed %s\n' "$TAG"
exit 0
