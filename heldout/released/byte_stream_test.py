"""Tests of the resumable byte stream against a local Range-capable server."""

import hashlib
import os
import stat
import sys
import textwrap
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from heldout.released import byte_stream
from heldout.released import testing_http

_PATH = "/blob.bin"


def _payload(n=200_000, seed=0):
  return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


class _FakeSleep:

  def __init__(self):
    self.waits = []

  def __call__(self, seconds):
    self.waits.append(seconds)


class ResumableStreamHTTPTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.server = testing_http.RangeHTTPServer().start()
    self.data = _payload()
    self.server.add_file(_PATH, self.data)
    self.url = self.server.base_url + _PATH
    self.sleep = _FakeSleep()

  def tearDown(self):
    self.server.stop()
    super().tearDown()

  def _stream(self, **kwargs):
    kwargs.setdefault("sleep", self.sleep)
    kwargs.setdefault("backoff_s", 0.5)
    return byte_stream.ResumableStream(byte_stream.http_opener(self.url, timeout_s=10),
                                       name=self.url, **kwargs)

  def _read_all(self, stream, chunk=7919):
    parts = []
    while True:
      data = stream.read(chunk)
      if not data:
        return b"".join(parts)
      parts.append(data)

  def test_reads_whole_object_and_reports_size(self):
    with self._stream() as stream:
      self.assertEqual(stream.connect(), len(self.data))
      self.assertEqual(self._read_all(stream), self.data)
      self.assertEqual(stream.read(10), b"")
    self.assertLen(self.server.requests, 1)
    self.assertIsNone(self.server.requests[0].range)

  @parameterized.named_parameters(
      ("one_cut", [50_000]),
      ("three_cuts", [1, 70_000, 33_333]),
      ("cut_at_header_boundary", [0, 123_456]))
  def test_dropped_connections_resume_with_range(self, cuts):
    self.server.cut_connections(_PATH, cuts)
    with self._stream(max_retries=2) as stream:
      self.assertEqual(self._read_all(stream), self.data)
      self.assertEqual(stream.reconnections, len(cuts))
    requests = self.server.requests
    self.assertLen(requests, len(cuts) + 1)
    offset = 0
    for cut, request in zip(cuts, requests):
      self.assertEqual(request.range, "bytes={}-".format(offset) if offset else None)
      self.assertTrue(request.dropped)
      offset += cut
    self.assertEqual(requests[-1].range, "bytes={}-".format(offset))
    self.assertEqual(requests[-1].status, 206)

  def test_server_ignoring_ranges_is_skipped_forward(self):
    self.server.set_honour_ranges(False)
    self.server.cut_connections(_PATH, [60_000])
    with self._stream() as stream:
      self.assertEqual(self._read_all(stream), self.data)
    self.assertEqual([r.status for r in self.server.requests], [200, 200])
    self.assertEqual(self.server.requests[1].range, "bytes=60000-")

  def test_backoff_doubles_and_gives_up_without_progress(self):
    self.server.cut_connections(_PATH, [0] * 10)
    with self._stream(max_retries=3, backoff_s=0.5) as stream:
      with self.assertRaisesRegex(byte_stream.FetchError, "giving up at byte 0 after 4"):
        stream.read(100)
    self.assertEqual(self.sleep.waits, [0.5, 1.0, 2.0])

  def test_progress_resets_the_retry_count(self):
    self.server.cut_connections(_PATH, [10_000, 10_000, 10_000, 10_000])
    with self._stream(max_retries=1) as stream:
      self.assertEqual(self._read_all(stream), self.data)
    self.assertEqual(self.sleep.waits, [0.5] * 4)

  def test_start_offset(self):
    with self._stream(start=123_000) as stream:
      self.assertEqual(self._read_all(stream), self.data[123_000:])
      self.assertEqual(stream.total_size, len(self.data))
    self.assertEqual(self.server.requests[0].range, "bytes=123000-")

  def test_start_at_end_is_empty(self):
    with self._stream(start=len(self.data)) as stream:
      self.assertEqual(stream.read(10), b"")
    self.assertEqual(self.server.requests[0].status, 416)

  def test_missing_object_fails_without_retrying(self):
    stream = byte_stream.ResumableStream(
        byte_stream.http_opener(self.server.base_url + "/nope"), name="nope",
        sleep=self.sleep)
    with self.assertRaisesRegex(byte_stream.FetchError, "HTTP 404"):
      stream.read(1)
    self.assertEqual(self.sleep.waits, [])

  def test_read_all_with_negative_size(self):
    with self._stream() as stream:
      self.assertEqual(stream.read(), self.data)


class FakeOpenerTest(absltest.TestCase):

  def _opener(self, versions, sizes, data=b"0123456789"):
    calls = []

    def open_at(offset):
      i = len(calls)
      calls.append(offset)
      import io  # pylint: disable=g-import-not-at-top
      body = data[offset:offset + 3]  # Each connection yields 3 bytes, then ends.
      return byte_stream.Opened(io.BytesIO(body), sizes[i], versions[i])

    return open_at, calls

  def test_reconnects_until_announced_size(self):
    opener, calls = self._opener([None] * 4, [10] * 4)
    stream = byte_stream.ResumableStream(opener, sleep=lambda s: None)
    self.assertEqual(stream.read(), b"0123456789")
    self.assertEqual(calls, [0, 3, 6, 9])

  def test_changed_version_is_an_error(self):
    opener, _ = self._opener(["a", "b"], [10, 10])
    stream = byte_stream.ResumableStream(opener, sleep=lambda s: None)
    with self.assertRaisesRegex(byte_stream.FetchError, "object changed"):
      stream.read()

  def test_changed_size_is_an_error(self):
    opener, _ = self._opener([None, None], [10, 11])
    stream = byte_stream.ResumableStream(opener, sleep=lambda s: None)
    with self.assertRaisesRegex(byte_stream.FetchError, "size changed from 10 to 11"):
      stream.read()

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "`start` must be non-negative"):
      byte_stream.ResumableStream(lambda o: None, start=-1)
    with self.assertRaisesRegex(ValueError, "`max_retries`"):
      byte_stream.ResumableStream(lambda o: None, max_retries=-1)


class LocalAndGsutilTest(absltest.TestCase):

  def test_local_file_and_file_url(self):
    data = _payload(5000, seed=1)
    path = os.path.join(self.create_tempdir().full_path, "a.tar.gz")
    with open(path, "wb") as f:
      f.write(data)
    for url in (path, "file://" + path):
      stream = byte_stream.ResumableStream(byte_stream.make_opener(url), start=1000)
      self.assertEqual(stream.read(), data[1000:])
      self.assertEqual(stream.total_size, 5000)
      stream.close()
    with self.assertRaisesRegex(byte_stream.FetchError, "no such file"):
      byte_stream.ResumableStream(byte_stream.local_opener(path + "x")).read()

  def test_gsutil_cat_with_range_and_failure(self):
    folder = self.create_tempdir().full_path
    data = _payload(3000, seed=2)
    blob = os.path.join(folder, "blob")
    with open(blob, "wb") as f:
      f.write(data)
    log = os.path.join(folder, "log")
    fake = os.path.join(folder, "gsutil")
    # A stand-in for `gsutil -q cat [-r N-] gs://...`: serves the local blob,
    # logging its arguments; the first call dies after 1000 bytes.
    with open(fake, "w") as f:
      f.write(textwrap.dedent("""\
          #!{python}
          import os, sys
          args = sys.argv[1:]
          with open({log!r}, "a") as log:
            log.write(" ".join(args) + "\\n")
          first = sum(1 for _ in open({log!r})) == 1
          start = int(args[args.index("-r") + 1].rstrip("-")) if "-r" in args else 0
          data = open({blob!r}, "rb").read()[start:]
          if first:
            sys.stdout.buffer.write(data[:1000]); sys.stdout.flush(); sys.exit(1)
          sys.stdout.buffer.write(data)
          """).format(python=sys.executable, log=log, blob=blob))
    os.chmod(fake, os.stat(fake).st_mode | stat.S_IEXEC)
    stream = byte_stream.ResumableStream(
        byte_stream.gsutil_opener("gs://bucket/blob", gsutil=fake), sleep=lambda s: None)
    reader = byte_stream.HashingReader(stream)
    reader.drain()
    self.assertEqual(reader.hexdigest(), hashlib.md5(data).hexdigest())
    self.assertEqual(reader.bytes_read, len(data))
    with open(log) as f:
      calls = f.read().splitlines()
    self.assertEqual(calls, ["-q cat gs://bucket/blob", "-q cat -r 1000- gs://bucket/blob"])


def _gsutil_environment(home):
  """gsutil with no user configuration: an empty HOME, no boto file."""
  return mock.patch.dict(os.environ, {"HOME": home, "BOTO_CONFIG": os.devnull})


class _CutOnce:
  """An opener whose first connection fails with an OSError after `cut` bytes."""

  def __init__(self, opener, cut):
    self._opener = opener
    self._cut = cut
    self.offsets = []

  def __call__(self, offset):
    self.offsets.append(offset)
    opened = self._opener(offset)
    if len(self.offsets) > 1:
      return opened
    inner, left = opened.fileobj, [self._cut]

    class _Cut:

      def read(self, size=-1):
        if not left[0]:
          raise OSError("connection reset (test)")
        data = inner.read(min(size, left[0]) if size and size > 0 else left[0])
        left[0] -= len(data)
        return data

      def close(self):
        inner.close()

    opened.fileobj = _Cut()
    return opened


class RealGsutilTest(absltest.TestCase):
  """The gsutil installed with the project (requirements.txt), on file:// URLs.

  gsutil's `cat` refuses file:// URLs, so the opener reads them with
  `gsutil cp URL -`; nothing here needs a network or credentials. Each gsutil
  call takes about a second to start.
  """

  def setUp(self):
    super().setUp()
    self.gsutil = byte_stream.find_gsutil()
    if self.gsutil is None:
      if "TEST_SRCDIR" in os.environ:
        self.fail("no gsutil beside {} or on PATH, though requirements.txt installs "
                  "it into the virtualenv".format(sys.executable))
      self.skipTest("gsutil is not installed")
    folder = self.create_tempdir().full_path
    self.enter_context(_gsutil_environment(self.create_tempdir().full_path))
    self.data = _payload(300_000, seed=4)
    self.path = os.path.join(folder, "blob.tar.gz")
    with open(self.path, "wb") as f:
      f.write(self.data)
    self.url = "file://" + self.path
    self.sleep = _FakeSleep()

  def test_it_is_the_virtualenvs_under_bazel(self):
    if "TEST_SRCDIR" not in os.environ:
      self.skipTest("not run by `bazel test`")
    self.assertEqual(self.gsutil,
                     os.path.join(os.path.dirname(sys.executable), "gsutil"))
    self.assertEqual(byte_stream.resolve_source("gs://bucket/x.tar.gz"), "gsutil")

  def test_reads_whole_and_from_an_offset(self):
    self.assertEqual(byte_stream.resolve_source(self.url, "gsutil"), "gsutil")
    opener = byte_stream.make_opener(self.url, "gsutil")
    with byte_stream.ResumableStream(opener, name=self.url, sleep=self.sleep) as stream:
      reader = byte_stream.HashingReader(stream)
      reader.drain(chunk_size=65536)
    self.assertEqual(reader.hexdigest(), hashlib.md5(self.data).hexdigest())
    self.assertEqual(reader.bytes_read, len(self.data))
    with byte_stream.ResumableStream(opener, start=123_457, name=self.url,
                                     sleep=self.sleep) as stream:
      self.assertEqual(stream.read(), self.data[123_457:])
      self.assertEqual(stream.offset, len(self.data))
    self.assertEqual(self.sleep.waits, [])

  def test_dropped_read_resumes_at_its_offset(self):
    opener = _CutOnce(byte_stream.gsutil_opener(self.url), cut=100_003)
    with byte_stream.ResumableStream(opener, name=self.url, sleep=self.sleep,
                                     backoff_s=0.5) as stream:
      self.assertEqual(stream.read(), self.data)
      self.assertEqual(stream.reconnections, 1)
    self.assertEqual(opener.offsets, [0, 100_003])
    self.assertEqual(self.sleep.waits, [0.5])

  def test_missing_object_fails_without_retrying(self):
    url = self.url + ".missing"
    with byte_stream.ResumableStream(byte_stream.gsutil_opener(url), name=url,
                                     sleep=self.sleep) as stream:
      with self.assertRaisesRegex(byte_stream.FetchError, "No URLs matched"):
        stream.read()
    self.assertEqual(self.sleep.waits, [])


class FindGsutilTest(absltest.TestCase):

  def _executable(self, folder, name):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
      f.write("#!/bin/sh\n")
    os.chmod(path, 0o755)
    return path

  def test_beside_the_interpreter_comes_before_path(self):
    venv_bin = self.create_tempdir().full_path
    on_path = self.create_tempdir().full_path
    python = self._executable(venv_bin, "python3")
    self._executable(on_path, "gsutil")
    with mock.patch.object(sys, "executable", python), \
        mock.patch.dict(os.environ, {"PATH": on_path}):
      self.assertEqual(byte_stream.find_gsutil(), os.path.join(on_path, "gsutil"))
      beside = self._executable(venv_bin, "gsutil")
      self.assertEqual(byte_stream.find_gsutil(), beside)

  def test_none_anywhere(self):
    venv_bin = self.create_tempdir().full_path
    with mock.patch.object(sys, "executable", self._executable(venv_bin, "python3")), \
        mock.patch.dict(os.environ, {"PATH": self.create_tempdir().full_path}):
      self.assertIsNone(byte_stream.find_gsutil())
      self.assertEqual(byte_stream.resolve_source("gs://b/x"), "gfile")
      with self.assertRaisesRegex(ValueError, "no gsutil beside"):
        byte_stream.resolve_source("gs://b/x", "gsutil")


class ResolveSourceTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("http", "http://host/x.tar.gz", "auto", "http"),
      ("https", "https://host/x.tar.gz", "auto", "http"),
      ("file_url", "file:///tmp/x.tar.gz", "auto", "local"),
      ("path", "/tmp/x.tar.gz", "auto", "local"),
      ("other_scheme", "s3://bucket/x.tar.gz", "auto", "gfile"),
      ("explicit_gfile", "gs://bucket/x.tar.gz", "gfile", "gfile"))
  def test_resolve(self, url, source, expected):
    self.assertEqual(byte_stream.resolve_source(url, source), expected)

  def test_gs_auto_depends_on_gsutil(self):
    expected = "gsutil" if byte_stream.find_gsutil() else "gfile"
    self.assertEqual(byte_stream.resolve_source("gs://b/x", "auto"), expected)

  def test_mismatches(self):
    with self.assertRaisesRegex(ValueError, "`source` must be one of"):
      byte_stream.resolve_source("http://x", "ftp")
    with self.assertRaisesRegex(ValueError, "needs an http"):
      byte_stream.resolve_source("gs://b/x", "http")
    with self.assertRaisesRegex(ValueError, "needs a gs:// or file://"):
      byte_stream.resolve_source("http://x", "gsutil")
    with self.assertRaisesRegex(ValueError, "needs a gs:// or file://"):
      byte_stream.resolve_source("/tmp/x.tar.gz", "gsutil")


class HashingReaderTest(absltest.TestCase):

  def test_md5_count_and_callback(self):
    import io  # pylint: disable=g-import-not-at-top
    data = _payload(10_000, seed=3)
    seen = []
    reader = byte_stream.HashingReader(io.BytesIO(data), on_bytes=seen.append)
    self.assertEqual(reader.read(4000), data[:4000])
    reader.drain(chunk_size=1000)
    self.assertEqual(reader.hexdigest(), hashlib.md5(data).hexdigest())
    self.assertEqual(sum(seen), 10_000)
    self.assertEqual(seen[:2], [4000, 1000])


class GoogHashTest(absltest.TestCase):

  def test_parse(self):
    # GCS's documented example: crc32c=n03x6A==, md5=Ojk9c3dhfxgoKVVHYwFbHQ==.
    expected = {"crc32c": 0x9f4df1e8, "md5": "3a393d7377617f182829554763015b1d"}
    self.assertEqual(byte_stream.parse_goog_hash(
        ["crc32c=n03x6A==", "md5=Ojk9c3dhfxgoKVVHYwFbHQ=="]), expected)
    self.assertEqual(byte_stream.parse_goog_hash(
        ["crc32c=n03x6A==,md5=Ojk9c3dhfxgoKVVHYwFbHQ==, sha1=abc"]), expected)
    self.assertEqual(byte_stream.parse_goog_hash(None), {})
    for bad in ("md5=abc", "crc32c=!!!!", "md5=n03x6A=="):
      with self.assertRaisesRegex(ValueError, "malformed x-goog-hash"):
        byte_stream.parse_goog_hash([bad])

  def test_header_changed_between_connections_is_an_error(self):
    server = testing_http.RangeHTTPServer().start()
    self.addCleanup(server.stop)
    data = bytes(range(256)) * 100
    server.add_file("/x", data)
    server.set_goog_hash("/x", md5=hashlib.md5(data).hexdigest())
    server.cut_connections("/x", [1000])
    url = server.base_url + "/x"
    opener = byte_stream.http_opener(url)

    def changing_opener(offset):
      if offset:
        server.set_goog_hash("/x", md5="0" * 32)
      return opener(offset)

    stream = byte_stream.ResumableStream(changing_opener, name=url, sleep=lambda s: None)
    self.assertEqual(stream.connect(), len(data))
    self.assertEqual(stream.server_hashes, {"md5": hashlib.md5(data).hexdigest()})
    with self.assertRaisesRegex(byte_stream.FetchError, "x-goog-hash changed"):
      stream.read()


if __name__ == "__main__":
  absltest.main()
