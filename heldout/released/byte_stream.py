"""A resumable byte stream over HTTP(S), `gsutil`, `tf.io.gfile` or a local file.

A released archive is 239-367 GB, so a dropped connection must not restart the
download. `ResumableStream` reads from a source opened at a byte offset; when
the connection fails or ends early it reopens the source at the offset it had
reached (an HTTP `Range: bytes=<offset>-` request, `gsutil cat -r <offset>-`,
or a seek) with bounded retries and exponential backoff, so a reader on top of
it (the tar extractor, an MD5) sees one uninterrupted stream.

gsutil is installed with the project (requirements.txt) into the virtualenv
Bazel runs binaries with, whose `bin/` is not on PATH; `find_gsutil` looks
next to the running interpreter first.
"""

import base64
import binascii
import dataclasses
import hashlib
import http.client
import io
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, Optional
import urllib.error
import urllib.parse
import urllib.request

from absl import logging

from heldout import errors
from heldout.released import streams

SOURCES = ("auto", "http", "gsutil", "gfile", "local")

_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_UNSATISFIED_RANGE_RE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$")


class FetchError(errors.HeldoutError, IOError):
  """The archive could not be read from its source (after any retries)."""


class _PermanentError(FetchError):
  """A failure that retrying cannot fix (404, 403, a changed object, ...)."""


@dataclasses.dataclass
class Opened:
  """A source opened at some offset.

  Attributes:
    fileobj: readable binary file object positioned at the requested offset.
    total_size: size of the whole object in bytes, if the source says.
    version: an opaque tag of the object's version (ETag / Last-Modified), or
      None; a change between reconnections means the object was replaced.
    hashes: checksums of the whole object the server sent (`x-goog-hash`):
      {"md5": hex, "crc32c": int}, either or both; empty when none.
  """
  fileobj: object
  total_size: Optional[int] = None
  version: Optional[str] = None
  hashes: dict = dataclasses.field(default_factory=dict)


def parse_goog_hash(values):
  """`x-goog-hash` header values -> {"md5": hex, "crc32c": int}.

  GCS sends the checksums of the whole object (also with a Range request),
  base64 of the digest, as one header per algorithm or comma-separated:
  `crc32c=n03x6A==, md5=Ojk9c3dhfxgoKVVHYwFbHQ==`. Unknown algorithms are
  ignored.

  Raises:
    ValueError: for a value that is not valid base64 of the right length.
  """
  hashes = {}
  for value in values or ():
    for item in value.split(","):
      name, sep, encoded = item.strip().partition("=")
      name = name.strip().lower()
      if not sep or name not in ("md5", "crc32c"):
        continue
      try:
        digest = base64.b64decode(encoded.strip(), validate=True)
      except binascii.Error:
        digest = b""
      if len(digest) != (16 if name == "md5" else 4):
        raise ValueError("malformed x-goog-hash {!r}".format(item.strip()))
      hashes[name] = digest.hex() if name == "md5" else int.from_bytes(digest, "big")
  return hashes


def _skip(fileobj, n):
  """Reads and drops `n` bytes (a server that ignored a Range request)."""
  while n > 0:
    chunk = fileobj.read(min(n, 1 << 20))
    if not chunk:
      raise OSError("connection ended while skipping to the resume offset")
    n -= len(chunk)


def http_opener(url, timeout_s=60.0):
  """Opener for `http(s)://` URLs, resuming with `Range: bytes=<offset>-`.

  Args:
    url: the object's URL.
    timeout_s: socket timeout of each request.

  Returns:
    `open_at(offset) -> Opened`.
  """

  def open_at(offset):
    headers = {"Accept-Encoding": "identity"}
    if offset:
      headers["Range"] = "bytes={}-".format(offset)
    request = urllib.request.Request(url, headers=headers)
    try:
      response = urllib.request.urlopen(request, timeout=timeout_s)  # pylint: disable=consider-using-with
    except urllib.error.HTTPError as e:
      if e.code == 416:
        match = _UNSATISFIED_RANGE_RE.match(e.headers.get("Content-Range", ""))
        if match and offset >= int(match.group(1)):
          return Opened(io.BytesIO(b""), int(match.group(1)))
      if e.code in (408, 425, 429) or e.code >= 500:
        raise OSError("{}: HTTP {} {}".format(url, e.code, e.reason)) from e
      raise _PermanentError("{}: HTTP {} {}".format(url, e.code, e.reason)) from e
    version = response.headers.get("ETag") or response.headers.get("Last-Modified")
    try:
      hashes = parse_goog_hash(response.headers.get_all("x-goog-hash"))
    except ValueError as e:
      response.close()
      raise _PermanentError("{}: {}".format(url, e)) from e
    if response.status == 206:
      content_range = response.headers.get("Content-Range", "")
      match = _CONTENT_RANGE_RE.match(content_range)
      if not match or int(match.group(1)) != offset:
        response.close()
        raise _PermanentError(
            "{}: asked for bytes from {}, server answered Content-Range {!r}".format(
                url, offset, content_range))
      total = None if match.group(3) == "*" else int(match.group(3))
      return Opened(response, total, version, hashes)
    length = response.headers.get("Content-Length")
    total = int(length) if length is not None else None
    if offset:
      logging.warning("%s: server ignored the Range request; skipping %d bytes",
                      url, offset)
      _skip(response, offset)
    return Opened(response, total, version, hashes)

  return open_at


class _ProcessReader:
  """Reads a subprocess's stdout; a non-zero exit at EOF is an OSError.

  The exit is a `_PermanentError` (not retried) when the program's error
  output contains one of `permanent_markers` (e.g. gsutil's "No URLs matched").
  """

  def __init__(self, args, permanent_markers=()):
    self._args = args
    self._permanent_markers = tuple(permanent_markers)
    try:
      # stdin is closed so that a tool asking a question fails instead of waiting.
      self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
      raise _PermanentError("cannot run {}: {}".format(args[0], e)) from e

  def read(self, size=-1):
    data = self._proc.stdout.read(size)
    if not data:
      code = self._proc.wait()
      if code != 0:
        err = self._proc.stderr.read().decode("utf-8", "replace").strip()
        message = "{} exited with {}: {}".format(" ".join(self._args), code, err[-500:])
        if any(marker in err for marker in self._permanent_markers):
          raise _PermanentError(message)
        raise OSError(message)
    return data

  def close(self):
    if self._proc.poll() is None:
      self._proc.kill()
    self._proc.wait()
    self._proc.stdout.close()
    self._proc.stderr.close()


# What gsutil says of a missing object; retrying cannot help.
_GSUTIL_NOT_FOUND = ("No URLs matched",)


def find_gsutil():
  """The path of the `gsutil` to run, or None when there is none.

  The one installed beside the running interpreter comes first (the project's
  virtualenv: Bazel runs its python directly, so its `bin/` is not on PATH),
  then the first on PATH.
  """
  if sys.executable:
    beside = os.path.join(os.path.dirname(sys.executable), "gsutil")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
      return beside
  return shutil.which("gsutil")


def gsutil_opener(url, gsutil=None):
  """Opener for `gs://` (and `file://`) URLs through gsutil (size unknown).

  A `gs://` object is read by `gsutil -q cat [-r <offset>-] URL`, resuming
  with a range. gsutil's `cat` refuses `file://` URLs, so those are read by
  `gsutil -q cp URL -` and the first `offset` bytes are skipped; a local copy
  of an archive (a test, a mirror on disk) thus goes through the same program
  and code path as the bucket.

  Args:
    url: a `gs://` or `file://` URL.
    gsutil: the gsutil program; None finds it with `find_gsutil`.

  Returns:
    `open_at(offset) -> Opened`.
  """
  program = gsutil or find_gsutil()
  if program is None:
    raise ValueError("no gsutil found beside {} or on PATH".format(sys.executable))
  local = url.startswith("file://")

  def open_at(offset):
    if local:
      reader = _ProcessReader([program, "-q", "cp", url, "-"], _GSUTIL_NOT_FOUND)
      if offset:
        try:
          _skip(reader, offset)
        except BaseException:
          reader.close()
          raise
      return Opened(reader)
    args = [program, "-q", "cat"]
    if offset:
      args += ["-r", "{}-".format(offset)]
    return Opened(_ProcessReader(args + [url], _GSUTIL_NOT_FOUND))

  return open_at


def gfile_opener(url):
  """Opener for anything `tf.io.gfile` reads (`gs://`, local paths, ...)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def open_at(offset):
    try:
      total = tf.io.gfile.stat(url).length
      f = tf.io.gfile.GFile(url, "rb")
      if offset:
        f.seek(offset)
    except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
            tf.errors.InvalidArgumentError) as e:
      raise _PermanentError("{}: {}".format(url, e.message)) from e
    except tf.errors.OpError as e:
      raise OSError("{}: {}".format(url, e.message)) from e
    return Opened(f, total)

  return open_at


def local_opener(path):
  """Opener for a local file (a `file://` URL or a path)."""
  if path.startswith("file://"):
    path = urllib.parse.unquote(urllib.parse.urlparse(path).path)

  def open_at(offset):
    try:
      f = open(path, "rb")  # pylint: disable=consider-using-with
    except FileNotFoundError as e:
      raise _PermanentError("{}: no such file".format(path)) from e
    total = os.fstat(f.fileno()).st_size
    f.seek(offset)
    return Opened(f, total, str(os.fstat(f.fileno()).st_mtime_ns))

  return open_at


def resolve_source(url, source="auto"):
  """Which reader serves `url`: "http", "gsutil", "gfile" or "local".

  "auto" picks http for `http(s)://`, `gsutil` for `gs://` when it is installed
  (`tf.io.gfile` otherwise; see `find_gsutil`), local for `file://` and plain
  paths, and gfile for any other scheme. "gsutil" reads `gs://` and `file://`
  URLs.

  Raises:
    ValueError: for an unknown `source`, or one that cannot read `url`.
  """
  if source not in SOURCES:
    raise ValueError("`source` must be one of {}, got {!r}".format(SOURCES, source))
  scheme = urllib.parse.urlparse(url).scheme if "://" in url else ""
  if source == "auto":
    if scheme in ("http", "https"):
      return "http"
    if scheme == "gs":
      return "gsutil" if find_gsutil() else "gfile"
    if scheme in ("", "file"):
      return "local"
    return "gfile"
  if source == "http" and scheme not in ("http", "https"):
    raise ValueError("`source` http needs an http(s):// URL, got {!r}".format(url))
  if source == "gsutil" and scheme not in ("gs", "file"):
    raise ValueError("`source` gsutil needs a gs:// or file:// URL, got {!r}".format(url))
  if source == "gsutil" and not find_gsutil():
    raise ValueError("`source` gsutil: no gsutil beside {} or on PATH".format(
        sys.executable))
  return source


def make_opener(url, source="auto", timeout_s=60.0):
  """`open_at(offset) -> Opened` for `url`, read by `source` (see resolve_source)."""
  kind = resolve_source(url, source)
  if kind == "http":
    return http_opener(url, timeout_s=timeout_s)
  if kind == "gsutil":
    return gsutil_opener(url)
  if kind == "gfile":
    return gfile_opener(url)
  return local_opener(url)


_RETRYABLE = (OSError, http.client.HTTPException, EOFError)


class ResumableStream:
  """A read-only byte stream that reconnects at its offset when a read fails.

  A failure is an exception from the source, or an early end (fewer bytes than
  the size the source announced). After a failure the stream waits
  `backoff_s * 2**(attempt - 1)` seconds (at most `max_backoff_s`) and reopens
  the source at the current offset. `max_retries` consecutive failures without
  a byte of progress raise `FetchError`; any progress resets the count.
  """

  def __init__(self, opener: Callable[[int], Opened], *, start=0, name="",
               max_retries=8, backoff_s=1.0, max_backoff_s=60.0,
               sleep=time.sleep):
    """Creates the stream; nothing is opened until `connect` or the first read.

    Args:
      opener: `open_at(offset) -> Opened`, e.g. from `make_opener`.
      start: the byte offset to start at.
      name: what to call the source in messages (its URL).
      max_retries: consecutive failed attempts allowed before giving up.
      backoff_s: first wait between attempts, doubled each time.
      max_backoff_s: the longest wait.
      sleep: the sleeping function (tests pass a fake).
    """
    if start < 0:
      raise ValueError("`start` must be non-negative, got {}".format(start))
    if max_retries < 0:
      raise ValueError("`max_retries` must be non-negative, got {}".format(max_retries))
    self._opener = opener
    self._offset = int(start)
    self._name = name
    self._max_retries = int(max_retries)
    self._backoff_s = float(backoff_s)
    self._max_backoff_s = float(max_backoff_s)
    self._sleep = sleep
    self._f = None
    self._version = None
    self._eof = False
    self._failures = 0
    self.total_size = None
    self.server_hashes = {}
    self.reconnections = 0
    self.connections = 0

  @property
  def offset(self):
    """Bytes of the object consumed so far (including the start offset)."""
    return self._offset

  def tell(self):
    return self._offset

  def readable(self):
    return True

  def _fail(self, error):
    self._close_current()
    self._failures += 1
    if self._failures > self._max_retries:
      raise FetchError("{}: giving up at byte {} after {} attempts: {}".format(
          self._name, self._offset, self._failures, error)) from error
    wait = min(self._max_backoff_s, self._backoff_s * 2 ** (self._failures - 1))
    logging.warning("%s: %s; reconnecting at byte %d in %.1f s (attempt %d of %d)",
                    self._name, error, self._offset, wait, self._failures,
                    self._max_retries)
    self._sleep(wait)

  def connect(self):
    """Opens the source at the current offset (retrying) unless already open."""
    while self._f is None and not self._eof:
      try:
        opened = self._opener(self._offset)
      except _PermanentError:
        raise
      except _RETRYABLE as e:
        self._fail(e)
        continue
      self.connections += 1
      if self.connections > 1:
        self.reconnections += 1
      if opened.total_size is not None:
        if self.total_size is None:
          self.total_size = opened.total_size
        elif opened.total_size != self.total_size:
          opened.fileobj.close()
          raise _PermanentError(
              "{}: object size changed from {} to {} bytes between connections".format(
                  self._name, self.total_size, opened.total_size))
      if opened.version is not None:
        if self._version is None:
          self._version = opened.version
        elif opened.version != self._version:
          opened.fileobj.close()
          raise _PermanentError(
              "{}: object changed between connections ({} -> {})".format(
                  self._name, self._version, opened.version))
      if opened.hashes:
        if not self.server_hashes:
          self.server_hashes = dict(opened.hashes)
        elif opened.hashes != self.server_hashes:
          opened.fileobj.close()
          raise _PermanentError(
              "{}: the object's x-goog-hash changed between connections ({} -> {})".format(
                  self._name, self.server_hashes, opened.hashes))
      if self.total_size is not None and self._offset > self.total_size:
        opened.fileobj.close()
        raise _PermanentError("{}: offset {} is past the object's end ({} bytes)".format(
            self._name, self._offset, self.total_size))
      self._f = opened.fileobj
    return self.total_size

  def read(self, size=-1):
    """Reads up to `size` bytes (all remaining when negative); b"" only at the end."""
    if size is None or size < 0:
      return streams.read_all(self.read)
    if size == 0 or self._eof:
      return b""
    while True:
      self.connect()
      if self._eof:
        return b""
      try:
        data = self._f.read(size)
      except _PermanentError:
        self._close_current()
        raise
      except _RETRYABLE as e:
        self._fail(e)
        continue
      if data:
        self._offset += len(data)
        self._failures = 0
        return data
      if self.total_size is not None and self._offset < self.total_size:
        self._fail(EOFError("connection ended at byte {} of {}".format(
            self._offset, self.total_size)))
        continue
      self._eof = True
      self._close_current()
      return b""

  def readinto(self, buffer):
    data = self.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)

  def _close_current(self):
    if self._f is not None:
      try:
        self._f.close()
      except Exception:  # pylint: disable=broad-except
        pass
      self._f = None

  def close(self):
    self._close_current()

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc):
    self.close()


def crc32c_function():
  """`crc32c(data, value) -> value` (crcmod's C extension, installed with gsutil), or None."""
  try:
    from crcmod import predefined  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return predefined.mkPredefinedCrcFun("crc-32c")


class HashingReader:
  """Passes reads through, feeding every byte to an MD5 and a progress callback."""

  def __init__(self, fileobj, on_bytes=None, md5=None, crc32c=False):
    """Wraps `fileobj`.

    Args:
      fileobj: anything with `read(size)`.
      on_bytes: called with the number of bytes of each read, or None.
      md5: a hashlib object to continue (its state so far), or None for a new one.
      crc32c: also compute the CRC32C (`self.crc32c`; None when no
        implementation is installed, see `crc32c_function`).
    """
    self._f = fileobj
    self._on_bytes = on_bytes
    self.md5 = md5 if md5 is not None else hashlib.md5()
    self._crc32c_fn = crc32c_function() if crc32c else None
    self.crc32c = 0 if self._crc32c_fn is not None else None
    self.bytes_read = 0

  def read(self, size=-1):
    data = self._f.read(size)
    if data:
      self.md5.update(data)
      if self._crc32c_fn is not None:
        self.crc32c = self._crc32c_fn(data, self.crc32c)
      self.bytes_read += len(data)
      if self._on_bytes is not None:
        self._on_bytes(len(data))
    return data

  def drain(self, chunk_size=1 << 20):
    """Reads to the end (so that the MD5 covers the whole object)."""
    while self.read(chunk_size):
      pass

  def hexdigest(self):
    return self.md5.hexdigest()
