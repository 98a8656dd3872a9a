"""Writes the committed seed corpus of the wire-protocol fuzzer (Tests/FacetFuzzTests/Corpus/envelopes): one
encoded Envelope per request kind the coordinator and the matchers serve, with small but valid contents, using
Python's protobuf runtime (clients/python). The image seeds (Corpus/images) are small files copied from the test fixtures.
Run: python3 scripts/make-fuzz-corpus.py"""
import os, random, struct, sys
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients", "python"))
from facet_client import facet_pb2 as pb

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "FacetFuzzTests", "Corpus", "envelopes")
os.makedirs(out, exist_ok=True)
rng = random.Random(7)

def emb(dim=128):
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = sum(x * x for x in v) ** 0.5
    e = pb.Embedding(values=[x / n for x in v], dimension=dim, model_version="1")
    return e

def env(name, field, msg):
    e = pb.Envelope(protocol_version=1, request_id="fuzz-" + name, deadline_unix_ms=4102444800000, client_id="fuzz")
    getattr(e, field).CopyFrom(msg)
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(e.SerializeToString())

tiny_png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                         "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082")
env("identify-embedding", "identify_request", pb.IdentifyRequest(embedding=emb(), k=5, ef=64, collections=["default"]))
env("identify-image", "identify_request", pb.IdentifyRequest(image=pb.Image(data=tiny_png, name="x.png"), k=3))
env("enrol", "enrol_request", pb.EnrolRequest(subject_id="alice", collection="default", embeddings=[emb(), emb()]))
env("verify", "verify_request", pb.VerifyRequest(probe_embedding=emb(), reference_embedding=emb(), threshold=0.5))
env("verify-subject", "verify_request", pb.VerifyRequest(probe_embedding=emb(), subject_id="alice"))
env("delete", "delete_subject_request", pb.DeleteSubjectRequest(subject_id="alice"))
env("status", "status_request", pb.StatusRequest(include_partitions=True))
env("embed", "embed_request", pb.EmbedRequest(image=pb.Image(data=tiny_png), max_faces=2))
rec = pb.TemplateRecord(template_id=12345, subject_id="bob", collection="default", embedding=emb(), masked=False,
                        source_sha256=bytes(32), enrolled_unix_ms=1700000000000)
env("partition-insert", "partition_insert_request", pb.PartitionInsertRequest(partition=1, records=[rec]))
env("partition-delete", "partition_delete_request", pb.PartitionDeleteRequest(partition=1, subject_id="bob", template_ids=[12345]))
env("partition-search", "partition_search_request", pb.PartitionSearchRequest(partitions=[0, 1], query=emb(), k=5, ef=32))
env("stream-records", "stream_records_request", pb.StreamRecordsRequest(partition=1, after_sequence=0, max_records=16))
print("wrote", len(os.listdir(out)), "seeds to", out)
