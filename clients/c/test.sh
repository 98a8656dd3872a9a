#!/usr/bin/env bash
# Builds the C example and runs it against a small Python ROUTER that answers status, so the
# C (protobuf-c) and Python (protobuf) encodings are checked against each other.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
$PY -m pip install -q -r ../python/requirements.txt
make -s facet_status
$PY - <<'PYEOF'
import os, subprocess, sys, threading
import zmq
sys.path.insert(0, os.path.join(os.getcwd(), "..", "python"))
from facet_client import facet_pb2 as pb
ctx = zmq.Context()
router = ctx.socket(zmq.ROUTER)
port = router.bind_to_random_port("tcp://127.0.0.1")
def serve():
    if not router.poll(10000):
        return
    ident, empty, frame = router.recv_multipart()
    req = pb.Envelope.FromString(frame)
    assert req.WhichOneof("body") == "status_request" and req.status_request.include_partitions
    rep = pb.Envelope(protocol_version=1, request_id=req.request_id)
    rep.status_reply.subjects, rep.status_reply.templates, rep.status_reply.healthy = 3, 7, True
    rep.status_reply.partition_count = 256
    rep.status_reply.nodes.add().node_id = "matcher-0"
    router.send_multipart([ident, b"", rep.SerializeToString()])
t = threading.Thread(target=serve); t.start()
out = subprocess.run(["./facet_status", f"tcp://127.0.0.1:{port}", "10000"], capture_output=True, text=True, timeout=30)
t.join()
print(out.stdout, end=""); print(out.stderr, end="", file=sys.stderr)
assert out.returncode == 0, out.returncode
assert "subjects 3 templates 7 nodes 1 partitions 256 healthy yes" in out.stdout
# Nobody answering: a bounded wait and exit code 3.
silent = ctx.socket(zmq.ROUTER); sport = silent.bind_to_random_port("tcp://127.0.0.1")
out = subprocess.run(["./facet_status", f"tcp://127.0.0.1:{sport}", "300"], capture_output=True, text=True, timeout=30)
assert out.returncode == 3, out.returncode
print("[c-example] ok")
PYEOF
