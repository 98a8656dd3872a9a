"""Tests of the Python client against a small in-test ROUTER (the real coordinator is Swift).

    python3 -m unittest discover -s clients/python/tests
"""
import os
import sys
import threading
import unittest

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from facet_client import FacetClient, FacetError, facet_pb2 as pb  # noqa: E402


class TestServer:
    """Answers status and delete (NOT_FOUND for unknown subjects); stays silent when asked."""

    def __init__(self, ctx, silent=False, curve_secret=None, curve_public=None, fail_first=0, fail_code=None):
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve_secret:
            self.sock.curve_server = True
            self.sock.curve_secretkey = curve_secret
            self.sock.curve_publickey = curve_public
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.silent = silent
        self.fail_first = fail_first  # the first requests are answered with fail_code (QUEUE_FULL by default)
        self.fail_code = fail_code or pb.ERROR_CODE_QUEUE_FULL
        self.seen = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, empty, frame = self.sock.recv_multipart()
            req = pb.Envelope.FromString(frame)
            self.seen.append(req.WhichOneof("body"))
            if self.silent:
                continue
            rep = pb.Envelope(protocol_version=pb.PROTOCOL_VERSION_1, request_id=req.request_id)
            kind = req.WhichOneof("body")
            if self.fail_first > 0:
                self.fail_first -= 1
                rep.error.code = self.fail_code
                rep.error.message = "failing on purpose"
                rep.error.retry_after_ms = 20
            elif kind == "status_request":
                rep.status_reply.subjects = 3
                rep.status_reply.healthy = True
            elif kind == "delete_subject_request" and req.delete_subject_request.subject_id != "alice":
                rep.error.code = pb.ERROR_CODE_NOT_FOUND
                rep.error.message = "no such subject"
            elif kind == "delete_subject_request":
                rep.delete_subject_reply.subject_id = "alice"
                rep.delete_subject_reply.templates_deleted = 2
            elif kind == "identify_request":
                q = req.identify_request
                assert len(q.embedding.values) == q.embedding.dimension == 512
                c = rep.identify_reply.candidates.add()
                c.subject_id, c.distance = "alice", 0.25
            else:
                rep.error.code = pb.ERROR_CODE_INVALID_ARGUMENT
            # A stale reply first (unknown id) to show that matching by id works.
            stale = pb.Envelope(protocol_version=pb.PROTOCOL_VERSION_1, request_id="stale")
            stale.status_reply.subjects = 999
            self.sock.send_multipart([ident, b"", stale.SerializeToString()])
            self.sock.send_multipart([ident, b"", rep.SerializeToString()])

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close(0)


class ClientTests(unittest.TestCase):
    def setUp(self):
        self.ctx = zmq.Context()

    def tearDown(self):
        self.ctx.term()

    def test_status_identify_delete(self):
        server = TestServer(self.ctx)
        with FacetClient(server.endpoint, context=self.ctx, timeout_s=10) as c:
            self.assertEqual(c.status().subjects, 3)
            r = c.identify(embedding=[0.5] * 512, model_version="m", k=1)
            self.assertEqual(r.candidates[0].subject_id, "alice")
            self.assertEqual(c.delete_subject("alice").templates_deleted, 2)
            with self.assertRaises(FacetError) as cm:
                c.delete_subject("nobody")
            self.assertEqual(cm.exception.code, pb.ERROR_CODE_NOT_FOUND)
            self.assertEqual(cm.exception.code_name, "NOT_FOUND")
        server.close()

    def test_retries(self):
        # Two QUEUE_FULL replies, then the answer: with retries the call succeeds on the third attempt.
        server = TestServer(self.ctx, fail_first=2)
        with FacetClient(server.endpoint, context=self.ctx, timeout_s=10, retries=3) as c:
            self.assertEqual(c.status().subjects, 3)
        self.assertEqual(server.seen, ["status_request"] * 3)
        server.close()
        # Without retries the first error comes back.
        server = TestServer(self.ctx, fail_first=1)
        with FacetClient(server.endpoint, context=self.ctx, timeout_s=10) as c:
            with self.assertRaises(FacetError) as cm:
                c.status()
            self.assertEqual(cm.exception.code, pb.ERROR_CODE_QUEUE_FULL)
        self.assertEqual(len(server.seen), 1)
        server.close()
        # A delete that failed NOT_DURABLE may have been applied: not sent again.
        server = TestServer(self.ctx, fail_first=1, fail_code=pb.ERROR_CODE_NOT_DURABLE)
        with FacetClient(server.endpoint, context=self.ctx, timeout_s=10, retries=3) as c:
            with self.assertRaises(FacetError) as cm:
                c.delete_subject("alice")
            self.assertEqual(cm.exception.code, pb.ERROR_CODE_NOT_DURABLE)
        self.assertEqual(len(server.seen), 1)
        server.close()

    def test_client_side_validation(self):
        with FacetClient("tcp://127.0.0.1:9", context=self.ctx) as c:
            with self.assertRaises(FacetError) as cm:
                c.enrol("", embeddings=[[1.0]])
            self.assertEqual(cm.exception.code, pb.ERROR_CODE_INVALID_ARGUMENT)

    def test_silent_server_times_out(self):
        server = TestServer(self.ctx, silent=True)
        with FacetClient(server.endpoint, context=self.ctx) as c:
            with self.assertRaises(FacetError) as cm:
                c.status(timeout_s=0.2)
            self.assertEqual(cm.exception.code, pb.ERROR_CODE_DEADLINE_EXCEEDED)
        server.close()

    def test_curve(self):
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        server = TestServer(self.ctx, curve_secret=server_secret, curve_public=server_public)
        with FacetClient(server.endpoint, context=self.ctx, curve_server_public_key=server_public.decode(),
                         curve_public_key=client_public.decode(), curve_secret_key=client_secret.decode()) as c:
            self.assertTrue(c.status().healthy)
        # Wrong server key: the handshake never completes, so no answer before the deadline.
        wrong_public, _ = zmq.curve_keypair()
        with FacetClient(server.endpoint, context=self.ctx, curve_server_public_key=wrong_public.decode(),
                         curve_public_key=client_public.decode(), curve_secret_key=client_secret.decode()) as c:
            with self.assertRaises(FacetError) as cm:
                c.status(timeout_s=0.5)
            self.assertEqual(cm.exception.code, pb.ERROR_CODE_DEADLINE_EXCEEDED)
        server.close()


if __name__ == "__main__":
    unittest.main()
