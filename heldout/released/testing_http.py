"""A local HTTP server with Range support and injectable faults, for tests.

Stands in for storage.googleapis.com: serves in-memory files on 127.0.0.1 at
an OS-chosen port, answers `Range: bytes=<a>-[<b>]` with 206 and
Content-Range, and can drop the connection after a given number of body bytes
on chosen requests (to test resumption), and can send GCS's `x-goog-hash`
checksum headers (right or wrong ones). Records every request it saw.
"""

import abc
import base64
import dataclasses
import hashlib
import http.server
import re
import socket
import threading
from typing import Dict, List, Optional

_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclasses.dataclass
class RequestRecord:
  method: str
  path: str
  range: Optional[str]
  status: int
  body_bytes_sent: int = 0
  dropped: bool = False


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves `self.server.files`; see `RangeHTTPServer`."""

  def log_message(self, *unused_args):  # Keep test output quiet.
    pass

  def _serve(self, send_body):
    server = self.server
    path = self.path.split("?", 1)[0]
    data = server.files.get(path)
    range_header = self.headers.get("Range")
    record = RequestRecord(self.command, path, range_header, 0)
    with server.lock:
      server.requests.append(record)
      cut = None
      if send_body and server.cuts.get(path):
        cut = server.cuts[path].pop(0)
    if data is None:
      record.status = 404
      self.send_error(404)
      return
    size = len(data)
    start, end = 0, size - 1
    status = 200
    if range_header is not None and server.honour_ranges:
      match = _RANGE_RE.match(range_header.strip())
      if not match:
        record.status = 400
        self.send_error(400, "bad Range")
        return
      start = int(match.group(1))
      if match.group(2):
        end = min(int(match.group(2)), size - 1)
      if start >= size:
        record.status = 416
        self.send_response(416)
        self.send_header("Content-Range", "bytes */{}".format(size))
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
      status = 206
    record.status = status
    body = data[start:end + 1]
    self.send_response(status)
    self.send_header("Content-Type", "application/gzip")
    self.send_header("Content-Length", str(len(body)))
    self.send_header("Accept-Ranges", "bytes")
    self.send_header("ETag", '"{}"'.format(hashlib.md5(data).hexdigest()))
    if status == 206:
      self.send_header("Content-Range", "bytes {}-{}/{}".format(start, end, size))
    for value in server.goog_hashes.get(path, ()):
      self.send_header("x-goog-hash", value)
    self.end_headers()
    if not send_body:
      return
    if cut is not None and cut < len(body):
      self.wfile.write(body[:cut])
      self.wfile.flush()
      record.body_bytes_sent = cut
      record.dropped = True
      self.close_connection = True
      try:
        self.connection.shutdown(socket.SHUT_RDWR)
      except OSError:
        pass
      return
    chunk = 1 << 16
    for i in range(0, len(body), chunk):
      self.wfile.write(body[i:i + chunk])
      record.body_bytes_sent += len(body[i:i + chunk])

  def do_GET(self):  # pylint: disable=invalid-name
    self._serve(send_body=True)

  def do_HEAD(self):  # pylint: disable=invalid-name
    self._serve(send_body=False)


class LocalServer(abc.ABC):
  """An HTTP server on 127.0.0.1 (an OS-chosen port) in a background thread,
  for tests: `start()`, `base_url`, ..., `stop()`, or `with`. Subclasses make
  the server (`_make_httpd`)."""

  _httpd = None
  _thread = None

  @abc.abstractmethod
  def _make_httpd(self) -> http.server.ThreadingHTTPServer:
    """A new `ThreadingHTTPServer` on ("127.0.0.1", 0) with its handler."""

  @property
  def base_url(self):
    host, port = self._httpd.server_address[:2]
    return "http://{}:{}".format(host, port)

  def start(self):
    httpd = self._make_httpd()
    httpd.daemon_threads = True
    self._httpd = httpd
    self._thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    self._thread.start()
    return self

  def stop(self):
    if self._httpd is not None:
      self._httpd.shutdown()
      self._httpd.server_close()
      self._thread.join(timeout=10)
      self._httpd = None

  def __enter__(self):
    return self.start()

  def __exit__(self, *unused_exc_info):
    self.stop()


class RangeHTTPServer(LocalServer):
  """`ThreadingHTTPServer` on 127.0.0.1 in a background thread.

  Usage: `server = RangeHTTPServer(); server.start(); ...; server.stop()`.

  Attributes:
    files: URL path ("/x.tar.gz") -> bytes served.
    cuts: URL path -> list of byte counts; each GET of that path pops the first
      and drops the connection after that many body bytes.
    requests: `RequestRecord` of every request, in order.
    honour_ranges: when False, Range headers are ignored (plain 200).
    goog_hashes: URL path -> `x-goog-hash` header values sent with it.
  """

  def __init__(self):
    self.files: Dict[str, bytes] = {}
    self.cuts: Dict[str, List[int]] = {}
    self.requests: List[RequestRecord] = []
    self.honour_ranges = True
    self.goog_hashes: Dict[str, List[str]] = {}

  def add_file(self, path, data):
    self.files[path] = bytes(data)

  def set_goog_hash(self, path, md5=None, crc32c=None):
    """Sends `x-goog-hash` headers with `path`: `md5` (hex), `crc32c` (int)."""
    values = []
    if crc32c is not None:
      values.append("crc32c=" + base64.b64encode(crc32c.to_bytes(4, "big")).decode())
    if md5 is not None:
      values.append("md5=" + base64.b64encode(bytes.fromhex(md5)).decode())
    self.goog_hashes[path] = values

  def cut_connections(self, path, after_bytes):
    """Drops the next GETs of `path` after `after_bytes[i]` body bytes each."""
    self.cuts[path] = list(after_bytes)

  def _make_httpd(self):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = self.files
    httpd.cuts = self.cuts
    httpd.requests = self.requests
    httpd.lock = threading.Lock()
    httpd.honour_ranges = True
    httpd.goog_hashes = self.goog_hashes
    return httpd

  def set_honour_ranges(self, value):
    self.honour_ranges = value
    self._httpd.honour_ranges = value
