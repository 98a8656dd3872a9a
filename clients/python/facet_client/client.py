"""A small synchronous client for the Facet wire protocol.

Framing: a DEALER socket sends [b"", Envelope]; the coordinator's ROUTER answers
[b"", Envelope] with the same request id. Every request carries a deadline; a reply that does
not come in time raises FacetError(DEADLINE_EXCEEDED). Error replies raise FacetError with the
server's code. CURVE is used when keys are given (Z85 text, as `facet keys generate` writes).
"""
from __future__ import annotations

import itertools
import os
import random
import struct
import time
from typing import Dict, Iterable, List, Optional, Sequence

import zmq

from . import facet_pb2 as pb

PROTOCOL_VERSION = pb.PROTOCOL_VERSION_1


class FacetError(Exception):
    """An error reply (or a client-side failure mapped onto the same codes)."""

    def __init__(self, code: int, message: str, field: str = "", node_id: str = "",
                 retry_after_ms: int = 0, limit: int = 0):
        self.code = code
        self.message = message
        self.field = field
        self.node_id = node_id
        self.retry_after_ms = retry_after_ms
        self.limit = limit
        super().__init__(str(self))

    @property
    def code_name(self) -> str:
        name = pb.ErrorCode.Name(self.code) if self.code in pb.ErrorCode.values() else f"UNRECOGNIZED({self.code})"
        return name.removeprefix("ERROR_CODE_")

    @classmethod
    def from_wire(cls, e: "pb.Error") -> "FacetError":
        return cls(e.code, e.message, e.field, e.node_id, e.retry_after_ms, e.limit)

    def __str__(self) -> str:
        s = self.code_name
        if self.message:
            s += f": {self.message}"
        if self.field:
            s += f" (field {self.field})"
        return s


def _now_ms() -> int:
    return int(time.time() * 1000)


class FacetClient:
    """Talks to a coordinator's client endpoint, one request at a time per call.

    Replies are matched by request id; stale replies (after a timeout) are discarded.
    Not thread-safe (ZeroMQ sockets are not): use one client per thread.
    """

    def __init__(self, endpoint: str, *, timeout_s: float = 10.0, client_id: Optional[str] = None,
                 curve_server_public_key: Optional[str] = None, curve_public_key: Optional[str] = None,
                 curve_secret_key: Optional[str] = None, max_frame_bytes: int = 16 << 20,
                 context: Optional[zmq.Context] = None, retries: int = 0):
        self.endpoint = endpoint
        self.retries = retries  # times a retryable failure of a request that may be sent twice is sent again
        self.timeout_s = timeout_s
        self.client_id = client_id or f"py-{os.getpid()}-{os.urandom(4).hex()}"
        self.max_frame_bytes = max_frame_bytes
        self._ids = itertools.count(1)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, 2 * max_frame_bytes)
        if curve_server_public_key:
            if not (curve_public_key and curve_secret_key):
                raise ValueError("CURVE needs the client's public and secret keys as well")
            self._sock.curve_serverkey = curve_server_public_key.strip().encode()
            self._sock.curve_publickey = curve_public_key.strip().encode()
            self._sock.curve_secretkey = curve_secret_key.strip().encode()
        self._sock.connect(endpoint)

    @classmethod
    def with_keys(cls, endpoint: str, keys_dir: str, **kwargs) -> "FacetClient":
        """A CURVE client with the keys `facet cluster up` writes under DATA/keys (the directory $FACET_KEYS names):
        client.key, client.key_secret and the coordinator's public key coordinator.key."""
        def read(name: str) -> str:
            with open(os.path.join(keys_dir, name)) as f:
                return f.read().strip()
        return cls(endpoint, curve_server_public_key=read("coordinator.key"), curve_public_key=read("client.key"),
                   curve_secret_key=read("client.key_secret"), **kwargs)

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> "FacetClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the general call --------------------------------------------------------------------

    # Retryable codes (as FacetError.Code.isRetryable in Swift), and the requests that may be sent twice: reads and
    # enrol (content-derived template ids); a delete only when it was refused before anything was done.
    RETRYABLE = {pb.ERROR_CODE_UNAVAILABLE, pb.ERROR_CODE_DEADLINE_EXCEEDED, pb.ERROR_CODE_RATE_LIMITED,
                 pb.ERROR_CODE_QUEUE_FULL, pb.ERROR_CODE_STALE_SHARD_MAP, pb.ERROR_CODE_NOT_DURABLE}
    IDEMPOTENT = {"embed_request", "identify_request", "verify_request", "status_request", "list_subjects_request",
                  "shard_map_request", "enrol_request", "get_job_request", "list_jobs_request"}

    @classmethod
    def may_retry(cls, body_field: str, error: "FacetError") -> bool:
        if error.code not in cls.RETRYABLE:
            return False
        if body_field == "delete_subject_request":
            return error.code in (pb.ERROR_CODE_RATE_LIMITED, pb.ERROR_CODE_QUEUE_FULL)
        return body_field in cls.IDEMPOTENT

    def call(self, body_field: str, message, timeout_s: Optional[float] = None) -> "pb.Envelope":
        """Sends the request (Envelope field `body_field` set to `message`) and returns the reply envelope; with
        `retries` (constructor), a failure that `may_retry` allows is sent again after a backoff (0.1 s doubling up to
        2 s, at least the server's retry_after_ms, up to 25 % jitter) while the call's deadline allows."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            try:
                return self._call_once(body_field, message, max(0.001, deadline - time.monotonic()))
            except FacetError as e:
                attempt += 1
                if attempt > self.retries or not self.may_retry(body_field, e):
                    raise
                wait = max(min(2.0, 0.1 * 2 ** (attempt - 1)), min(e.retry_after_ms, 30_000) / 1000) * random.uniform(1.0, 1.25)
                if time.monotonic() + wait + 0.01 >= deadline:
                    raise
                time.sleep(wait)

    def _call_once(self, body_field: str, message, timeout_s: float) -> "pb.Envelope":
        now = _now_ms()
        env = pb.Envelope(protocol_version=PROTOCOL_VERSION, request_id=f"{self.client_id}-{next(self._ids)}",
                          deadline_unix_ms=now + int(timeout_s * 1000), client_id=self.client_id, sent_unix_ms=now)
        getattr(env, body_field).CopyFrom(message)
        frame = env.SerializeToString()
        if len(frame) > self.max_frame_bytes:
            raise FacetError(pb.ERROR_CODE_FRAME_TOO_LARGE, f"request of {len(frame)} bytes", limit=self.max_frame_bytes)
        deadline = time.monotonic() + timeout_s
        try:
            self._sock.send_multipart([b"", frame], flags=zmq.NOBLOCK)
        except zmq.Again:
            raise FacetError(pb.ERROR_CODE_UNAVAILABLE, f"cannot queue a request to {self.endpoint}")
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                if time.monotonic() >= deadline:
                    raise FacetError(pb.ERROR_CODE_DEADLINE_EXCEEDED, f"no reply from {self.endpoint} within {timeout_s} s")
                continue
            frames = self._sock.recv_multipart(zmq.NOBLOCK)
            if len(frames) < 2 or frames[0] != b"":
                continue
            reply = pb.Envelope()
            try:
                reply.ParseFromString(frames[1])
            except Exception:  # a malformed reply cannot be matched to a request
                continue
            if reply.request_id != env.request_id:
                continue  # a stale reply to a request that timed out
            if reply.WhichOneof("body") == "error":
                raise FacetError.from_wire(reply.error)
            return reply

    def _expect(self, reply: "pb.Envelope", field: str):
        kind = reply.WhichOneof("body")
        if kind != field:
            raise FacetError(pb.ERROR_CODE_INTERNAL, f"expected {field}, got {kind}")
        return getattr(reply, field)

    # -- typed requests ----------------------------------------------------------------------

    def embed(self, image: bytes, upsample: int = 0, jitter: int = 0, timeout_s: Optional[float] = None) -> "pb.EmbedReply":
        r = pb.EmbedRequest(image=pb.Image(data=image), upsample=upsample, jitter=jitter)
        return self._expect(self.call("embed_request", r, timeout_s), "embed_reply")

    def enrol(self, subject_id: str, images: Sequence[bytes] = (), embeddings: Sequence[Sequence[float]] = (),
              model_version: str = "", collection: str = "", metadata: Optional[Dict[str, str]] = None,
              faces: Sequence["pb.Face"] = (), timeout_s: Optional[float] = None) -> "pb.EnrolReply":
        """Enrols images (one face each), embeddings (stored as unmasked faces) and/or faces as `embed` returned
        them (their mask state and periocular embedding are kept, as for an image)."""
        if not subject_id:
            raise FacetError(pb.ERROR_CODE_INVALID_ARGUMENT, "subject id is empty", field="subject_id")
        if not images and not embeddings and not faces:
            raise FacetError(pb.ERROR_CODE_INVALID_ARGUMENT, "nothing to enrol: give images, embeddings or faces", field="images")
        r = pb.EnrolRequest(subject_id=subject_id, collection=collection)
        r.images.extend(pb.Image(data=i) for i in images)
        r.embeddings.extend(self.embedding(e, model_version) for e in embeddings)
        r.faces.extend(faces)
        r.metadata.update(metadata or {})
        return self._expect(self.call("enrol_request", r, timeout_s), "enrol_reply")

    @staticmethod
    def embedding(values: Sequence[float], model_version: str = "") -> "pb.Embedding":
        return pb.Embedding(values=list(values), dimension=len(values), model_version=model_version)

    def identify(self, image: Optional[bytes] = None, embedding: Optional[Sequence[float]] = None, k: int = 5,
                 collections: Iterable[str] = (), with_classifier: bool = False, model_version: str = "",
                 face: Optional["pb.Face"] = None, timeout_s: Optional[float] = None) -> "pb.IdentifyReply":
        """1:N search by exactly one of: an image, an embedding (an unmasked face), or a face as `embed` returned it
        (the same search as by its image: mask state and periocular embedding carried)."""
        if sum(x is not None for x in (image, embedding, face)) != 1:
            raise FacetError(pb.ERROR_CODE_INVALID_ARGUMENT, "give exactly one of image, embedding or face")
        r = pb.IdentifyRequest(k=k, with_classifier=with_classifier)
        r.collections.extend(collections)
        if image is not None:
            r.image.data = image
        elif face is not None:
            r.face.CopyFrom(face)
        else:
            r.embedding.CopyFrom(self.embedding(embedding, model_version))
        return self._expect(self.call("identify_request", r, timeout_s), "identify_reply")

    def verify(self, probe: Optional[bytes] = None, reference: Optional[bytes] = None, subject_id: Optional[str] = None,
               threshold: float = 0.0, probe_face: Optional["pb.Face"] = None, reference_face: Optional["pb.Face"] = None,
               timeout_s: Optional[float] = None) -> "pb.VerifyReply":
        """1:1 comparison: a probe image or face (from `embed`) against a reference image, face or enrolled subject."""
        if (probe is None) == (probe_face is None):
            raise FacetError(pb.ERROR_CODE_INVALID_ARGUMENT, "give exactly one of probe or probe_face")
        if sum(x is not None for x in (reference, reference_face, subject_id)) != 1:
            raise FacetError(pb.ERROR_CODE_INVALID_ARGUMENT, "give exactly one of reference, reference_face or subject_id")
        r = pb.VerifyRequest(threshold=threshold)
        if probe is not None:
            r.probe_image.data = probe
        else:
            r.probe_face.CopyFrom(probe_face)
        if reference is not None:
            r.reference_image.data = reference
        elif reference_face is not None:
            r.reference_face.CopyFrom(reference_face)
        else:
            r.subject_id = subject_id
        return self._expect(self.call("verify_request", r, timeout_s), "verify_reply")

    def delete_subject(self, subject_id: str, reason: str = "", timeout_s: Optional[float] = None) -> "pb.DeleteSubjectReply":
        r = pb.DeleteSubjectRequest(subject_id=subject_id, reason=reason)
        return self._expect(self.call("delete_subject_request", r, timeout_s), "delete_subject_reply")

    def list_subjects(self, collection: str = "", page_size: int = 0, max_pages: int = 10_000,
                      timeout_s: Optional[float] = None) -> List["pb.SubjectSummary"]:
        return self._all_pages("list_subjects_request", "list_subjects_reply", "subjects", max_pages, timeout_s,
                               lambda token: pb.ListSubjectsRequest(collection=collection, page_size=page_size, page_token=token))

    def _all_pages(self, body_field: str, reply_field: str, items: str, max_pages: int, timeout_s: Optional[float],
                   make_request) -> list:
        """Follows page tokens: `make_request(token)` builds each page's request; returns the items of every page."""
        out, token = [], ""
        for _ in range(max_pages):
            page = self._expect(self.call(body_field, make_request(token), timeout_s), reply_field)
            out.extend(getattr(page, items))
            if not page.next_page_token:
                return out
            token = page.next_page_token
        raise FacetError(pb.ERROR_CODE_RESOURCE_EXHAUSTED, f"more than {max_pages} pages")

    # -- jobs (run by the coordinator; a start returns at once, the job's progress and result come with job()) --------

    def start_retrain(self, activate: bool = True, balance_classes: bool = False, cost: float = 0.0,
                      collections: Sequence[str] = (), reason: str = "", timeout_s: Optional[float] = None) -> "pb.Job":
        r = pb.StartRetrainRequest(activate=activate, balance_classes=balance_classes, cost=cost,
                                   collections=list(collections), reason=reason)
        return self._expect(self.call("start_retrain_request", r, timeout_s), "job")

    def start_purge_model(self, model_version: str, dry_run: bool = False, reason: str = "",
                          timeout_s: Optional[float] = None) -> "pb.Job":
        """Deletes every template of a retired embedding model version on every replica (not the active version);
        with dry_run it only counts. The job's result says what it deleted or counted."""
        r = pb.StartPurgeModelRequest(model_version=model_version, dry_run=dry_run, reason=reason)
        return self._expect(self.call("start_purge_model_request", r, timeout_s), "job")

    def job(self, job_id: str, timeout_s: Optional[float] = None) -> "pb.Job":
        return self._expect(self.call("get_job_request", pb.GetJobRequest(job_id=job_id), timeout_s), "job")

    def cancel_job(self, job_id: str, timeout_s: Optional[float] = None) -> "pb.Job":
        return self._expect(self.call("cancel_job_request", pb.CancelJobRequest(job_id=job_id), timeout_s), "job")

    def list_jobs(self, kind: int = 0, state: int = 0, max_pages: int = 10_000,
                  timeout_s: Optional[float] = None) -> List["pb.Job"]:
        return self._all_pages("list_jobs_request", "list_jobs_reply", "jobs", max_pages, timeout_s,
                               lambda token: pb.ListJobsRequest(kind=kind, state=state, page_token=token))

    FINISHED = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}

    def wait_for_job(self, job_id: str, interval_s: float = 0.2, timeout_s: float = 600.0) -> "pb.Job":
        """Polls the job until it is finished (succeeded, failed or cancelled); DEADLINE_EXCEEDED after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            j = self.job(job_id)
            if j.state in self.FINISHED:
                return j
            if time.monotonic() >= deadline:
                raise FacetError(pb.ERROR_CODE_DEADLINE_EXCEEDED, f"job {job_id} still running after {timeout_s} s")
            time.sleep(interval_s)

    def status(self, include_partitions: bool = False, timeout_s: Optional[float] = None) -> "pb.StatusReply":
        r = pb.StatusRequest(include_partitions=include_partitions)
        return self._expect(self.call("status_request", r, timeout_s), "status_reply")
