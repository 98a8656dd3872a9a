#!/usr/bin/env bash
# The non-Swift clients against a real cluster: starts `facet cluster up` (CURVE on, coordinator, 2 matchers with
# 2 replicas, 1 mask-aware embedder with periocular fusion) on 127.0.0.1, then runs
#   - the Python client's real-cluster tests (clients/python/tests/test_real_cluster.py),
#   - the Python example (clients/python/examples/identify.py) with the keys from $FACET_KEYS,
#   - the C example (clients/c/facet_status) with CURVE from $FACET_KEYS,
# and stops the cluster (SIGTERM; every node must be gone afterwards). Bounded in time; cleans up on any exit.
#
# Usage: clients/test-real-cluster.sh [FACET_BINARY]   (default .build/debug/facet; needs the models: $FACET_MODELS)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${1:-$ROOT/.build/debug/facet}"
PY=${PYTHON:-python3}
export FACET_MODELS="${FACET_MODELS:-$ROOT/models}"
[ -x "$BIN" ] || { echo "[real-cluster] no facet binary at $BIN (swift build first)" >&2; exit 1; }
$PY -m pip install -q -r clients/python/requirements.txt
make -s -C clients/c facet_status

DATA="$(mktemp -d -t facet-clients.XXXXXX)"
# A free pair of ports: the coordinator's client port and its worker port (the client port + 1).
PORT="$($PY - <<'PYEOF'
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 1))
    except OSError:
        a.close(); b.close(); continue
    a.close(); b.close(); print(port); break
PYEOF
)"
[ -n "$PORT" ] || { echo "[real-cluster] no free pair of ports" >&2; exit 1; }
ENDPOINT="tcp://127.0.0.1:$PORT"
CLUSTER_PID=""
cleanup() {
  local rc=$?
  if [ -n "$CLUSTER_PID" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
    kill -TERM "$CLUSTER_PID" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$CLUSTER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$CLUSTER_PID" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ]; then echo "[real-cluster] failed; node logs:"; tail -n 25 "$DATA"/logs/*.log 2>/dev/null || true; fi
  rm -rf "$DATA"
  exit $rc
}
trap cleanup EXIT INT TERM

echo "[real-cluster] facet cluster up on $ENDPOINT (data $DATA)"
setsid "$BIN" cluster up --data "$DATA" --matchers 2 --replicas 2 --partitions 8 --embedders 1 --endpoint "$ENDPOINT" \
  --periocular-fusion bundled > "$DATA/cluster.out" 2>&1 &
CLUSTER_PID=$!

export FACET_ENDPOINT="$ENDPOINT" FACET_KEYS="$DATA/keys" FACET_DEMO="$ROOT/demo/images"
for _ in $(seq 1 100); do [ -f "$FACET_KEYS/client.key_secret" ] && break; sleep 0.1; done
timeout 600 $PY -m unittest -v clients/python/tests/test_real_cluster.py

echo "[real-cluster] the Python example"
out="$(timeout 120 $PY clients/python/examples/identify.py --endpoint "$ENDPOINT" --timeout 60 \
  --enrol "Tony_Blair_example=demo/images/gallery/Tony_Blair/Tony_Blair_0001.jpg" demo/images/probes/Tony_Blair_0003.jpg)"
echo "$out"
echo "$out" | grep -q "^enrolled Tony_Blair_example: templates"
# The probe's best candidate is one of the two Tony Blair subjects (the test enrolled "Tony_Blair" too), a match.
echo "$out" | sed -n '/candidates/{n;p}' | grep -Eq "^  Tony_Blair(_example)? +distance [0-9.]+ match"
echo "$out" | grep -q "healthy=True"

echo "[real-cluster] the C example (CURVE keys from \$FACET_KEYS)"
# The counts come with the matchers' heartbeats (every 250 ms): asked again (bounded) until the example's enrolment shows.
want="subjects 7 templates 13 nodes 4 partitions 8 healthy yes"
for _ in $(seq 1 50); do
  out="$(timeout 60 clients/c/facet_status "$ENDPOINT" 10000)"
  echo "$out" | grep -Eq "^$want$" && break
  sleep 0.1
done
echo "$out"
echo "$out" | grep -Eq "^$want$" || { echo "[real-cluster] the C example did not report: $want"; exit 1; }
# Without the keys a secured coordinator does not answer: a bounded wait, exit code 3.
rc=0; FACET_KEYS= timeout 60 clients/c/facet_status "$ENDPOINT" 1500 || rc=$?
[ "$rc" = 3 ] || { echo "[real-cluster] a plaintext C client got rc $rc, expected 3 (no answer)"; exit 1; }

echo "[real-cluster] stopping the cluster"
kill -TERM "$CLUSTER_PID"
for _ in $(seq 1 300); do kill -0 "$CLUSTER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$CLUSTER_PID" 2>/dev/null; then echo "[real-cluster] facet cluster up did not stop within 30 s"; exit 1; fi
grep -q "facet cluster: stopped" "$DATA/cluster.out"
if pgrep -f -- "$DATA/config" >/dev/null; then echo "[real-cluster] nodes left running:"; pgrep -af -- "$DATA/config"; exit 1; fi
CLUSTER_PID=""
echo "[real-cluster] ok"
