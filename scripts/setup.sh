#!/usr/bin/env bash
# Facet set-up: Debian packages, Python reference tools and model files. Idempotent.
# Usage: scripts/setup.sh [--no-python]   (FACET_MODELS overrides the models folder, default ./models)
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="${FACET_MODELS:-$PWD/models}"
WANT_PY=1
for a in "$@"; do case "$a" in --no-python) WANT_PY=0;; esac; done

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

APT_PKGS=(libzmq3-dev liblmdb-dev libopenblas-dev libturbojpeg0-dev libpng-dev liblinear-dev
          libprotobuf-c-dev protobuf-c-compiler pkg-config protobuf-compiler libdlib-dev libdlib-data lmdb-utils)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
else
  log "Debian packages present"
fi

command -v swift >/dev/null || die "swift not found on PATH (Swift 6.x toolchain required)"

if [ "$WANT_PY" = 1 ]; then
  PY=${PYTHON:-python3}
  need=()
  for m in dlib:dlib-bin face_recognition_models:face-recognition-models numpy:numpy; do
    $PY -c "import ${m%%:*}" 2>/dev/null || need+=("${m##*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "pip install ${need[*]}"
    $PY -m pip install -q "${need[@]}" || die "pip install failed: ${need[*]}"
  fi
fi

mkdir -p "$MODELS"
want=(dlib_face_recognition_resnet_model_v1.dat mmod_human_face_detector.dat shape_predictor_5_face_landmarks.dat shape_predictor_68_face_landmarks.dat)
have_all=1; for f in "${want[@]}"; do [ -s "$MODELS/$f" ] || have_all=0; done
if [ "$have_all" = 0 ]; then
  PY=${PYTHON:-python3}
  src=$($PY -c 'import face_recognition_models,os;print(os.path.join(os.path.dirname(face_recognition_models.__file__),"models"))' 2>/dev/null || true)
  if [ -z "$src" ] || [ ! -d "$src" ]; then
    tmp=$(mktemp -d)
    log "downloading face-recognition-models with pip"
    $PY -m pip download -q --no-deps -d "$tmp" face-recognition-models || die "pip download face-recognition-models failed"
    f=$(ls "$tmp"/face_recognition_models* | head -1)
    case "$f" in
      *.whl|*.zip) (cd "$tmp" && $PY -m zipfile -e "$f" x) ;;
      *) mkdir -p "$tmp/x" && tar -xzf "$f" -C "$tmp/x" ;;
    esac
    src=$(dirname "$(find "$tmp/x" -name dlib_face_recognition_resnet_model_v1.dat | head -1)")
  fi
  for f in "${want[@]}"; do
    [ -s "$MODELS/$f" ] && continue
    if [ -s "$src/$f" ]; then cp "$src/$f" "$MODELS/$f"
    elif [ "$f" = shape_predictor_68_face_landmarks.dat ] && [ -s /usr/share/dlib/shape_predictor_68_face_landmarks.dat.bz2 ]; then
      bunzip2 -kc /usr/share/dlib/shape_predictor_68_face_landmarks.dat.bz2 > "$MODELS/$f"
    elif [ "$f" = shape_predictor_68_face_landmarks.dat ] && [ -s /usr/share/dlib/shape_predictor_68_face_landmarks.dat ]; then
      cp /usr/share/dlib/shape_predictor_68_face_landmarks.dat "$MODELS/$f"
    else die "model file $f not found in $src"; fi
  done
  log "models in $MODELS"
else
  log "models present in $MODELS"
fi
