#!/usr/bin/env bash
# Regenerate the committed protobuf code from proto/facet.proto:
#   Sources/FacetWire/facet.pb.swift              (protoc-gen-swift, built from SwiftPM's swift-protobuf checkout)
#   clients/python/facet_client/facet_pb2.py      (protoc --python_out; runtime: pip protobuf==$PY_PROTOBUF)
#   clients/c/facet.pb-c.c, clients/c/facet.pb-c.h (protoc-c from Debian's protobuf-c-compiler)
#
# Usage: scripts/gen-proto.sh [OUTPUT_ROOT]
#   OUTPUT_ROOT defaults to the repository root; scripts/check-proto.sh passes a temporary folder.
#
# The SwiftPM build plugin is deliberately not used (it compiles protoc and abseil from source,
# about ten minutes here); protoc comes from Debian (3.21.x) and only protoc-gen-swift is built,
# once, into .build/protoc-gen-swift (about 100 s), at the swift-protobuf version Package.resolved pins.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="${1:-$ROOT}"
PY_PROTOBUF=4.21.12   # the Python runtime matching protoc 3.21 (clients/python/requirements.txt says the same)

log() { printf '[gen-proto] %s\n' "$*" >&2; }
die() { printf '[gen-proto] error: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------------------
need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v protoc-c >/dev/null || need_apt+=(protobuf-c-compiler)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "installing ${need_apt[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || die "apt-get install ${need_apt[*]} failed"
fi
case "$(protoc --version)" in
  "libprotoc 3.21."*) ;;
  *) die "expected protoc 3.21.x (Debian 12), found '$(protoc --version)'; the committed code is made with 3.21" ;;
esac

# protoc-gen-swift from the checkout SwiftPM resolved for this package.
SP_CHECKOUT="$ROOT/.build/checkouts/swift-protobuf"
if [ ! -d "$SP_CHECKOUT" ]; then
  log "resolving Swift packages (swift-protobuf checkout missing)"
  swift package resolve >/dev/null
fi
[ -d "$SP_CHECKOUT" ] || die "no swift-protobuf checkout at $SP_CHECKOUT"
SP_REV=$(git -C "$SP_CHECKOUT" rev-parse HEAD)
PLUGIN_SCRATCH="$ROOT/.build/protoc-gen-swift"
PLUGIN="$PLUGIN_SCRATCH/release/protoc-gen-swift"
if [ ! -x "$PLUGIN" ] || [ "$(cat "$PLUGIN_SCRATCH/.revision" 2>/dev/null)" != "$SP_REV" ]; then
  log "building protoc-gen-swift at swift-protobuf $SP_REV (about 100 s)"
  swift build -c release --product protoc-gen-swift --package-path "$SP_CHECKOUT" --scratch-path "$PLUGIN_SCRATCH" >&2 \
    || die "building protoc-gen-swift failed"
  echo "$SP_REV" > "$PLUGIN_SCRATCH/.revision"
fi

# --- generate --------------------------------------------------------------------------------
mkdir -p "$OUT/Sources/FacetWire" "$OUT/clients/python/facet_client" "$OUT/clients/c"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

protoc --proto_path=proto --plugin=protoc-gen-swift="$PLUGIN" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath --swift_out="$TMP" facet.proto
cp "$TMP/facet.pb.swift" "$OUT/Sources/FacetWire/facet.pb.swift"

protoc --proto_path=proto --python_out="$TMP" facet.proto
cp "$TMP/facet_pb2.py" "$OUT/clients/python/facet_client/facet_pb2.py"

protoc-c --proto_path=proto --c_out="$TMP" facet.proto
cp "$TMP/facet.pb-c.c" "$TMP/facet.pb-c.h" "$OUT/clients/c/"

log "generated into $OUT (python runtime: protobuf==$PY_PROTOBUF)"
