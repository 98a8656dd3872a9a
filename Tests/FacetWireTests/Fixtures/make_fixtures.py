#!/usr/bin/env python3
"""Writes envelopes encoded by Python's protobuf runtime (clients/python/facet_client/facet_pb2.py)
so the Swift tests can check that both languages agree byte for byte.

Usage: python3 Tests/FacetWireTests/Fixtures/make_fixtures.py   (needs pip protobuf==4.21.12)
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "clients", "python"))
from facet_client import facet_pb2 as pb  # noqa: E402


def identify_request():
    e = pb.Envelope(protocol_version=pb.PROTOCOL_VERSION_1, request_id="req-0001",
                    deadline_unix_ms=1_700_000_005_000, client_id="python-fixture",
                    sent_unix_ms=1_700_000_000_000)
    q = e.identify_request
    # 512 values i/512 - 0.5: exactly representable in float32, so no rounding question arises.
    q.embedding.values.extend([i / 512.0 - 0.5 for i in range(512)])
    q.embedding.dimension = 512
    q.embedding.model_version = "test-512"
    q.k = 7
    q.collections.extend(["staff", "visitors"])
    q.max_distance = 0.5
    q.with_classifier = True
    return e


def error_reply():
    e = pb.Envelope(protocol_version=pb.PROTOCOL_VERSION_1, request_id="req-0002", client_id="coordinator-1")
    e.error.code = pb.ERROR_CODE_NO_FACE
    e.error.message = "no face found in image 0"
    e.error.field = "images[0]"
    e.error.node_id = "embedder-3"
    return e


def enrol_reply():
    e = pb.Envelope(protocol_version=pb.PROTOCOL_VERSION_1, request_id="req-0003")
    r = e.enrol_reply
    r.subject_id = "alice"
    r.collection = "staff"
    r.template_ids.extend([1, 2**63 + 5])
    r.partition = 201
    r.durability.policy = pb.WRITE_POLICY_QUORUM
    r.durability.replicas_required = 2
    r.durability.replicas_acknowledged = 2
    r.durability.durable_on.extend(["matcher-0", "matcher-2"])
    r.durability.shard_map_epoch = 9
    return e


def main():
    for name, env in [("identify_request", identify_request()), ("error_reply", error_reply()),
                      ("enrol_reply", enrol_reply())]:
        with open(os.path.join(HERE, name + ".bin"), "wb") as f:
            f.write(env.SerializeToString())
    # Not an Envelope: the last string field cut short, then a varint that never ends.
    with open(os.path.join(HERE, "malformed.bin"), "wb") as f:
        f.write(error_reply().SerializeToString()[:-3] + b"\x08\xff\xff")


if __name__ == "__main__":
    main()
