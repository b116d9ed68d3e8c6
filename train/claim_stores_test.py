"""Tests of the claim stores: GCS (against a fake JSON API) and `for_path`."""

import os
import threading
import time
from unittest import mock

from absl.testing import absltest

from train import claim_stores
from train import claims
from train import fake_gcs

BUCKET = "bucket"


def _race(functions):
  """Runs `functions` from one thread each, all at once; their results."""
  results = [None] * len(functions)
  barrier = threading.Barrier(len(functions))

  def run(i):
    barrier.wait()
    results[i] = functions[i]()

  threads = [threading.Thread(target=run, args=(i,))
             for i in range(len(functions))]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=30)
  return results


class _FakeGcsTestCase(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.server = fake_gcs.FakeGcsServer().start()
    self.addCleanup(self.server.stop)
    env = mock.patch.dict(os.environ, {
        claim_stores.EMULATOR_HOST_ENV: self.server.base_url})
    env.start()
    self.addCleanup(env.stop)
    self.store = claim_stores.GcsClaimStore(backoff_s=0.001)


class GcsClaimStoreTest(_FakeGcsTestCase):

  def test_create_is_exclusive_and_read_back(self):
    path = "gs://bucket/exp/0.7/.3.claim"
    self.assertIsNone(self.store.read(path))
    before = time.time()
    self.assertTrue(self.store.create(path, "mine"))
    self.assertFalse(self.store.create(path, "theirs"))
    stored = self.store.read(path)
    self.assertEqual(stored.text, "mine")
    self.assertEqual(stored.version,
                     self.server.objects[(BUCKET, "exp/0.7/.3.claim")]
                     .generation)
    self.assertAlmostEqual(stored.mtime, before, delta=2.0)
    self.assertEqual(claim_stores.GcsClaimStore.settle_s, 0)

  def test_create_from_eight_threads_at_once(self):
    path = "gs://bucket/exp/0.7/.1.claim"
    results = _race([lambda i=i: self.store.create(path, "taker {}".format(i))
                     for i in range(8)])
    self.assertEqual(results.count(True), 1)
    self.assertEqual(self.server.text(BUCKET, "exp/0.7/.1.claim"),
                     "taker {}".format(results.index(True)))

  def test_replace_racing_takers_one_wins(self):
    path = "gs://bucket/exp/0.7/.2.claim"
    self.assertTrue(self.store.create(path, "dead"))
    version = self.store.read(path).version
    stores = [claim_stores.GcsClaimStore() for _ in range(8)]
    results = _race([
        lambda i=i: stores[i].replace(path, "taker {}".format(i), version)
        for i in range(8)])
    self.assertEqual(results.count(True), 1)
    stored = self.store.read(path)
    self.assertEqual(stored.text, "taker {}".format(results.index(True)))
    self.assertNotEqual(stored.version, version)

  def test_refresh_renews_then_fails_after_a_takeover(self):
    path = "gs://bucket/exp/0.7/.4.claim"
    self.assertTrue(self.store.create(path, "mine"))
    self.server.age(BUCKET, "exp/0.7/.4.claim", 100)
    old = self.store.read(path)
    self.assertTrue(self.store.refresh(path, "mine", old.version))
    new = self.store.read(path)
    self.assertEqual(new.text, "mine")
    self.assertNotEqual(new.version, old.version)
    self.assertGreater(new.mtime, old.mtime + 90)
    self.assertTrue(self.store.replace(path, "taker", new.version))
    self.assertFalse(self.store.refresh(path, "mine", new.version))
    self.assertEqual(self.store.read(path).text, "taker")
    self.server.delete(BUCKET, "exp/0.7/.4.claim")
    self.assertFalse(self.store.refresh(path, "mine", new.version))

  def test_delete_with_a_stale_version_leaves_the_new_claim(self):
    path = "gs://bucket/exp/0.7/.5.claim"
    self.assertTrue(self.store.create(path, "dead"))
    stale = self.store.read(path).version
    self.assertTrue(self.store.replace(path, "taker", stale))
    self.store.delete(path, stale)
    self.assertEqual(self.store.read(path).text, "taker")
    self.store.delete(path, self.store.read(path).version)
    self.assertIsNone(self.store.read(path))
    self.store.delete(path, stale)  # gone: no error

  def test_read_when_replaced_or_deleted_between_its_requests(self):
    path = "gs://bucket/exp/0.7/.6.claim"
    self.assertTrue(self.store.create(path, "first"))

    def replace_once(record):
      if record.query.get("alt") == "media" and not replaced:
        replaced.append(True)
        self.server.put(BUCKET, "exp/0.7/.6.claim", b"second")

    replaced = []
    self.server.before_request = replace_once
    stored = self.store.read(path)
    self.assertEqual(stored.text, "second")
    self.assertEqual(stored.version,
                     self.server.objects[(BUCKET, "exp/0.7/.6.claim")]
                     .generation)

    def delete(record):
      if record.query.get("alt") == "media":
        self.server.delete(BUCKET, "exp/0.7/.6.claim")

    self.server.before_request = delete
    self.assertIsNone(self.store.read(path))

  def test_list_follows_pages_and_names_direct_objects_only(self):
    self.server.page_size = 2
    for run_id in range(5):
      self.assertTrue(self.store.create(
          "gs://bucket/exp/0.7/.{}.claim".format(run_id), "x"))
    self.server.put(BUCKET, "exp/0.7/", b"")  # makedirs' marker
    self.server.put(BUCKET, "exp/0.7/3/aux_arrays.npz", b"")
    self.server.put(BUCKET, "exp/0.70/.9.claim", b"")
    expected = [".{}.claim".format(r) for r in range(5)]
    del self.server.requests[:]
    self.assertEqual(self.store.list("gs://bucket/exp/0.7"), expected)
    pages = [r for r in self.server.requests if r.name is None]
    self.assertGreaterEqual(len(pages), 3)
    self.assertEqual({r.query["prefix"] for r in pages}, {"exp/0.7/"})
    self.assertEqual(self.store.list("gs://bucket/exp/0.7/"), expected)
    self.assertEqual(self.store.list("gs://bucket/exp/none"), [])

  def test_special_characters_in_names(self):
    folder = "gs://bucket/exp/a b/ü#?%2F+&=;"
    path = folder + "/.7.claim"
    self.assertTrue(self.store.create(path, "mine"))
    self.assertIn((BUCKET, "exp/a b/ü#?%2F+&=;/.7.claim"), self.server.objects)
    stored = self.store.read(path)
    self.assertEqual(stored.text, "mine")
    self.assertTrue(self.store.refresh(path, "mine", stored.version))
    self.assertEqual(self.store.list(folder), [".7.claim"])
    self.store.delete(path, self.store.read(path).version)
    self.assertEqual(self.server.objects, {})

  def test_errors_name_path_status_and_message(self):
    path = "gs://bucket/exp/0.7/.8.claim"
    self.server.fail_next(403, message="caller lacks storage.objects.create")
    with self.assertRaisesRegex(
        claim_stores.GcsError,
        r"gs://bucket/exp/0\.7/\.8\.claim: GCS create failed: HTTP 403: "
        r"caller lacks storage\.objects\.create"):
      self.store.create(path, "mine")
    self.server.fail_next(500, count=5, message="backend error")
    with self.assertRaisesRegex(claim_stores.GcsError,
                                r"\.8\.claim: .*HTTP 500: backend error"):
      self.store.read(path)
    self.server.fail_next(500, message="backend error", method="GET")
    with self.assertRaises(claim_stores.GcsError) as raised:
      claim_stores.GcsClaimStore(attempts=1).list("gs://bucket/exp/0.7")
    self.assertEqual((raised.exception.path, raised.exception.status),
                     ("gs://bucket/exp/0.7", 500))

  def test_retries_throttling_and_server_errors(self):
    path = "gs://bucket/exp/0.7/.9.claim"
    self.server.fail_next(503, count=2)
    self.server.fail_next(429)
    del self.server.requests[:]
    self.assertTrue(self.store.create(path, "mine"))
    self.assertEqual([r.status for r in self.server.requests],
                     [503, 503, 429, 200])

  def test_retried_write_that_had_landed_counts(self):
    path = "gs://bucket/exp/0.7/.10.claim"
    # The upload is applied but its answer is a 503: the retry meets 412.
    self.server.fail_next(503, method="POST", applied=True)
    self.assertTrue(self.store.create(path, "mine"))
    version = self.store.read(path).version
    self.server.fail_next(503, method="POST", applied=True)
    self.assertTrue(self.store.replace(path, "mine again", version))
    self.assertEqual(self.store.read(path).text, "mine again")
    # Someone else's object: a 412 after a retry is still a refusal.
    self.server.fail_next(503, method="POST")
    self.assertFalse(self.store.create(path, "another"))

  def test_no_response_is_an_error_naming_the_path(self):
    dead = fake_gcs.FakeGcsServer().start()
    url = dead.base_url
    dead.stop()
    store = claim_stores.GcsClaimStore(endpoint=url, attempts=2,
                                       backoff_s=0.001, timeout_s=5)
    with self.assertRaisesRegex(claim_stores.GcsError,
                                r"gs://bucket/x: GCS read .*no response"):
      store.read("gs://bucket/x")

  def test_credentials_from_google_auth_default(self):
    import google.auth.credentials  # pylint: disable=g-import-not-at-top
    with mock.patch.dict(os.environ):
      os.environ.pop(claim_stores.EMULATOR_HOST_ENV)
      store = claim_stores.GcsClaimStore()
    self.assertFalse(store.anonymous)
    store.endpoint = self.server.base_url  # the fake, with credentials
    with mock.patch("google.auth.default", return_value=(
        google.auth.credentials.AnonymousCredentials(), None)) as default:
      self.assertTrue(store.create("gs://bucket/x", "mine"))
      self.assertEqual(store.read("gs://bucket/x").text, "mine")
    default.assert_called_once_with(
        scopes=("https://www.googleapis.com/auth/devstorage.read_write",))
    session = store._session()  # pylint: disable=protected-access
    self.assertEqual(type(session).__name__, "AuthorizedSession")


class ForPathTest(absltest.TestCase):

  def test_stores_by_scheme(self):
    self.assertIsInstance(claim_stores.for_path("/tmp/exp"),
                          claim_stores.LocalClaimStore)
    with mock.patch.dict(os.environ,
                         {claim_stores.EMULATOR_HOST_ENV: "127.0.0.1:9023"}):
      store = claim_stores.for_path("gs://bucket/exp")
      self.assertIsInstance(store, claim_stores.GcsClaimStore)
      self.assertEqual(store.endpoint, "http://127.0.0.1:9023")
      self.assertTrue(store.anonymous)
      self.assertIs(claim_stores.for_path("gs://other/x"), store)
    with mock.patch.dict(os.environ):
      os.environ.pop(claim_stores.EMULATOR_HOST_ENV, None)
      store = claim_stores.for_path("gs://bucket/exp")
      self.assertEqual(store.endpoint, claim_stores.DEFAULT_GCS_ENDPOINT)
      self.assertFalse(store.anonymous)
    with self.assertRaisesRegex(ValueError, "no bucket"):
      claim_stores.for_path("gs:///exp")
    with self.assertRaisesRegex(ValueError, "s3://.*--noclaims"):
      claim_stores.for_path("s3://bucket/exp")

  def test_rfc3339(self):
    self.assertEqual(claim_stores.rfc3339_seconds("1970-01-01T00:00:01Z"), 1.0)
    self.assertAlmostEqual(
        claim_stores.rfc3339_seconds("2024-05-01T12:00:00.25+02:00"),
        claim_stores.rfc3339_seconds("2024-05-01T10:00:00.250Z"))
    self.assertAlmostEqual(claim_stores.rfc3339_seconds(
        fake_gcs.rfc3339(1714564800.5)), 1714564800.5)
    with self.assertRaisesRegex(ValueError, "RFC 3339"):
      claim_stores.rfc3339_seconds("yesterday")


class _GcsFolders:
  """`heldout.storage`'s listing of folders, read from the fake's objects
  (tf.io.gfile cannot reach the fake server)."""

  def __init__(self, server):
    self.server = server

  def _children(self, path):
    bucket, prefix = claim_stores.split_gcs_path(path)
    prefix = prefix.rstrip("/") + "/"
    with self.server.lock:
      names = [n for b, n in self.server.objects if b == bucket and
               n.startswith(prefix) and n != prefix]
    return {n[len(prefix):].split("/")[0] for n in names}

  def isdir(self, path):
    return bool(self._children(path))

  def listdir(self, path):
    return sorted(self._children(path))


class RunClaimsOnGcsTest(_FakeGcsTestCase):

  def test_claims_refused_taken_over_and_released(self):
    folder = "gs://bucket/exp"
    self.assertIsInstance(claim_stores.for_path(folder),
                          claim_stores.GcsClaimStore)
    dead = claims.RunClaims(folder, 0.7, stale_after_s=60, refresh_every_s=1)
    spare = claims.RunClaims(folder, 0.7, stale_after_s=60, refresh_every_s=1)
    self.assertIsInstance(dead.store, claim_stores.GcsClaimStore)
    self.assertTrue(dead.try_claim(3))
    self.assertTrue(dead.try_claim(4))
    self.assertTrue(dead.try_claim(3))  # ours already
    dead._stop.set()  # pylint: disable=protected-access  # "killed"
    self.assertFalse(spare.try_claim(3))  # fresh
    self.server.age(BUCKET, "exp/0.7/.3.claim", 120)
    self.assertTrue(spare.try_claim(3))  # stale: taken over
    self.assertFalse(dead.still_ours(3))
    self.assertTrue(spare.still_ours(3))
    dead.refresh()  # forgets run 3, keeps run 4
    dead.release(3)  # not dead's any more: left alone
    self.assertTrue(spare.still_ours(3))
    self.assertIn(spare.owner, self.server.text(BUCKET, "exp/0.7/.3.claim"))

    with mock.patch.object(claims.storage, "for_path",
                           return_value=_GcsFolders(self.server)):
      status = claims.experiment_status(folder, run_ids=range(6),
                                        stale_after_s=60)
    self.assertEqual(list(status), [0.7])
    self.assertEqual([c.run_id for c in status[0.7].claimed], [3, 4])
    self.assertEqual(status[0.7].missing, [0, 1, 2, 5])
    self.assertEqual(claims.claim_stores.for_path(folder).list(
        folder + "/0.7"), [".3.claim", ".4.claim"])

    dead.release_all()
    spare.release_all()
    self.assertEqual(self.server.objects, {})

  def test_heartbeat_keeps_a_claim_fresh_and_stale_ones_are_taken(self):
    folder = "gs://bucket/exp"
    live = claims.RunClaims(folder, 0.7, stale_after_s=30,
                            refresh_every_s=0.05)
    other = claims.RunClaims(folder, 0.7, stale_after_s=30,
                             refresh_every_s=0.05)
    self.assertTrue(live.try_claim(1))
    first = self.server.objects[(BUCKET, "exp/0.7/.1.claim")].generation
    self.server.age(BUCKET, "exp/0.7/.1.claim", 100)
    deadline = time.time() + 10
    while (self.server.objects[(BUCKET, "exp/0.7/.1.claim")].generation ==
           first and time.time() < deadline):
      time.sleep(0.02)
    self.assertFalse(other.try_claim(1))  # refreshed: fresh again
    live._stop.set()  # pylint: disable=protected-access  # "killed"
    live._thread.join(timeout=10)  # pylint: disable=protected-access
    self.server.age(BUCKET, "exp/0.7/.1.claim", 100)
    self.assertTrue(other.try_claim(1))
    self.assertFalse(live.still_ours(1))
    live.refresh()
    self.assertTrue(other.still_ours(1))
    other.release_all()
    live.release_all()
    self.assertEqual(self.server.objects, {})

if __name__ == "__main__":
  absltest.main()
