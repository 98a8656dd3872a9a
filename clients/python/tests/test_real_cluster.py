"""The Python client against a real Facet cluster (`facet cluster up`: coordinator, matchers, an embedder, CURVE).

Run by clients/test-real-cluster.sh, which starts the cluster and sets FACET_ENDPOINT, FACET_KEYS and FACET_DEMO;
skipped when they are not set (clients/python/test.sh runs the in-test-ROUTER tests only).
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from facet_client import FacetClient, FacetError, facet_pb2 as pb  # noqa: E402

ENDPOINT = os.environ.get("FACET_ENDPOINT")
KEYS = os.environ.get("FACET_KEYS")
DEMO = os.environ.get("FACET_DEMO")


def read(path):
    with open(path, "rb") as f:
        return f.read()


@unittest.skipUnless(ENDPOINT and KEYS and DEMO, "needs a running cluster (clients/test-real-cluster.sh)")
class RealClusterTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = FacetClient.with_keys(ENDPOINT, KEYS, timeout_s=60)
        # Bounded wait until every partition is served and the embedder has registered.
        deadline = time.time() + 300
        last = None
        while time.time() < deadline:
            try:
                s = cls.client.status(timeout_s=2)
                last = s
                if s.healthy and any(n.role == pb.NODE_ROLE_EMBEDDER and n.state == pb.NODE_STATE_READY for n in s.nodes):
                    break
            except FacetError as e:
                last = e
            time.sleep(0.2)
        else:
            raise AssertionError(f"cluster not ready: {last}")
        gallery = os.path.join(DEMO, "gallery")
        cls.names = sorted(os.listdir(gallery))
        for name in cls.names:
            images = [read(os.path.join(gallery, name, f)) for f in sorted(os.listdir(os.path.join(gallery, name)))]
            r = cls.client.enrol(name, images=images)
            assert len(r.template_ids) == len(images), r

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def probe(self, name):
        return read(os.path.join(DEMO, "probes", f"{name}_0003.jpg"))

    def test_identify_every_probe(self):
        for name in self.names:
            r = self.client.identify(image=self.probe(name), k=3)
            self.assertFalse(r.partial)
            self.assertEqual(r.candidates[0].subject_id, name, r)
            self.assertTrue(r.candidates[0].match, r)
            self.assertEqual(len(r.candidates), 3)

    def test_status_and_listing(self):
        # The counts come with the matchers' heartbeats: a bounded wait until they settle.
        for _ in range(100):
            s = self.client.status(include_partitions=True)
            if (s.subjects, s.templates) == (len(self.names), 2 * len(self.names)):
                break
            time.sleep(0.1)
        self.assertTrue(s.healthy)
        self.assertEqual((s.subjects, s.templates), (len(self.names), 2 * len(self.names)))
        self.assertEqual(sum(p.subjects for p in s.partitions), len(self.names))
        listed = {x.subject_id for x in self.client.list_subjects()}
        self.assertTrue(set(self.names) <= listed, listed)

    def test_masked_face_embed_once(self):
        masked = read(os.path.join(DEMO, "george-w-bush-masked.jpg"))
        faces = self.client.embed(masked).faces
        self.assertEqual(len(faces), 1)
        face = faces[0]
        self.assertTrue(face.masked and face.mask_probability > 0.5, face.mask_probability)
        self.assertEqual(len(face.embedding.values), 128)
        self.assertEqual(len(face.periocular_embedding.values), 128)
        by_image = self.client.identify(image=masked, k=4)
        by_face = self.client.identify(face=face, k=4)
        self.assertTrue(by_face.face.masked)
        self.assertEqual([c.subject_id for c in by_face.candidates], [c.subject_id for c in by_image.candidates])
        for a, b in zip(by_face.candidates, by_image.candidates):
            self.assertAlmostEqual(a.distance, b.distance, places=5)
            self.assertEqual((a.periocular_fused, a.match), (b.periocular_fused, b.match))
        self.assertEqual(by_face.candidates[0].subject_id, "George_W_Bush")
        self.assertTrue(all(c.periocular_fused for c in by_face.candidates))
        # Verify against the enrolled subject, by image and by face: the fused masked–unmasked comparison.
        v_image = self.client.verify(probe=masked, subject_id="George_W_Bush")
        v_face = self.client.verify(probe_face=face, subject_id="George_W_Bush")
        self.assertEqual(v_face.comparison, pb.COMPARISON_TYPE_MASKED_UNMASKED)
        self.assertTrue(v_face.periocular_fused and v_image.periocular_fused)
        self.assertAlmostEqual(v_face.distance, v_image.distance, places=5)
        self.assertEqual(v_face.match, v_image.match)
        # Two faces compare as their two images do.
        reference = read(os.path.join(DEMO, "gallery", "George_W_Bush", "George_W_Bush_0001.jpg"))
        ref_face = self.client.embed(reference).faces[0]
        pair_images = self.client.verify(probe=masked, reference=reference)
        pair_faces = self.client.verify(probe_face=face, reference_face=ref_face)
        self.assertAlmostEqual(pair_faces.distance, pair_images.distance, places=5)
        self.assertEqual((pair_faces.threshold, pair_faces.match), (pair_images.threshold, pair_images.match))
        # Enrol by the face: a masked template with its periocular embedding; deleting it erases it.
        e = self.client.enrol("bush-by-face", faces=[face])
        self.assertTrue(e.templates[0].masked)
        again = self.client.identify(face=face, k=2)
        self.assertEqual(again.candidates[0].subject_id, "bush-by-face")
        self.assertAlmostEqual(again.candidates[0].distance, 0.0, places=4)
        self.assertEqual(self.client.delete_subject("bush-by-face").templates_deleted, 1)
        after = self.client.identify(face=face, k=3)
        self.assertNotIn("bush-by-face", [c.subject_id for c in after.candidates])

    def test_jobs(self):
        # A retraining of the identity classifier: started, followed to the end, listed.
        job = self.client.wait_for_job(self.client.start_retrain(reason="python client test").job_id, timeout_s=300)
        self.assertEqual(job.state, pb.JOB_STATE_SUCCEEDED, job.error)
        self.assertEqual(job.kind, pb.JOB_KIND_RETRAIN)
        self.assertTrue(job.result.startswith("svm-"), job.result)
        self.assertIn(job.job_id, [j.job_id for j in self.client.list_jobs(kind=pb.JOB_KIND_RETRAIN)])
        # Purging the active model version is refused; a dry run of a version nobody has counts nothing.
        with self.assertRaises(FacetError) as cm:
            self.client.start_purge_model("1")
        self.assertEqual(cm.exception.code, pb.ERROR_CODE_FAILED_PRECONDITION)
        dry = self.client.wait_for_job(self.client.start_purge_model("0", dry_run=True).job_id, timeout_s=120)
        self.assertEqual(dry.state, pb.JOB_STATE_SUCCEEDED, dry.error)
        self.assertEqual(dry.kind, pb.JOB_KIND_PURGE_MODEL)
        self.assertTrue(dry.result.startswith("dry run: 0 templates of model 0"), dry.result)
        with self.assertRaises(FacetError) as cm:
            self.client.job("no-such-job")
        self.assertEqual(cm.exception.code, pb.ERROR_CODE_NOT_FOUND)

    def test_errors(self):
        cases = [
            (lambda: self.client.identify(image=b"not an image"), pb.ERROR_CODE_BAD_IMAGE),
            (lambda: self.client.identify(embedding=[0.1] * 127), pb.ERROR_CODE_INVALID_ARGUMENT),
            (lambda: self.client.delete_subject("nobody-here"), pb.ERROR_CODE_NOT_FOUND),
            (lambda: self.client.verify(probe=self.probe(self.names[0]), subject_id="nobody-here"), pb.ERROR_CODE_NOT_FOUND),
            (lambda: self.client.identify(face=pb.Face(masked=True)), pb.ERROR_CODE_INVALID_ARGUMENT),
        ]
        for call, code in cases:
            with self.assertRaises(FacetError) as cm:
                call()
            self.assertEqual(cm.exception.code, code, cm.exception)


if __name__ == "__main__":
    unittest.main()
