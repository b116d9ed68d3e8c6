"""An in-memory stand-in for the GCS JSON API, for tests of `GcsClaimStore`.

Serves on 127.0.0.1 at an OS-chosen port, in a background thread, the part
of https://cloud.google.com/storage/docs/json_api that claims use:

  * `POST /upload/storage/v1/b/B/o?uploadType=media&name=N` (a new
    generation of N; `ifGenerationMatch` honoured, 0 meaning "absent");
  * `GET /storage/v1/b/B/o/N` (metadata: `generation`, `updated` in RFC 3339,
    `size`) and with `alt=media[&generation=G]` (the content);
  * `DELETE /storage/v1/b/B/o/N` (`ifGenerationMatch` honoured);
  * `GET /storage/v1/b/B/o?prefix=P&delimiter=/&pageToken=T` (`items` and
    `prefixes`, at most `page_size` entries a page, `nextPageToken`).

Preconditions are checked and applied under one lock, so racing writers see
exactly what GCS promises: of several writes conditional on the same
generation, one succeeds and the rest get 412. Errors come as GCS sends them
(`{"error": {"code": ..., "message": ...}}`). Tests can inject failures
(`fail_next`), change an object's `updated` time (`age`) and run code when a
request arrives (`before_request`); every request is recorded.
"""

import dataclasses
import http.server
import json
import threading
import time
import urllib.parse
from typing import Callable, Dict, List, Optional, Tuple

from heldout.released import testing_http

_PRECONDITION_MESSAGE = ("At least one of the pre-conditions you specified "
                         "did not hold.")


def rfc3339(seconds) -> str:
  """"2024-05-01T12:00:00.123Z" for `seconds` since the epoch."""
  whole = int(seconds)
  millis = int(round((seconds - whole) * 1000))
  if millis == 1000:
    whole, millis = whole + 1, 0
  return "{}.{:03d}Z".format(time.strftime("%Y-%m-%dT%H:%M:%S",
                                           time.gmtime(whole)), millis)


@dataclasses.dataclass
class StoredObject:
  data: bytes
  generation: int
  updated: float  # seconds since the epoch


@dataclasses.dataclass
class RequestRecord:
  method: str
  bucket: str
  name: Optional[str]  # None for a list
  query: Dict[str, str]
  status: int = 0


@dataclasses.dataclass
class _Fault:
  status: int
  message: str
  method: Optional[str]
  applied: bool  # handle the request, then answer with the error anyway


class FakeGcsServer(testing_http.LocalServer):
  """The fake JSON API; `start()`, `base_url`, ..., `stop()` (or `with`).

  Attributes:
    objects: (bucket, name) -> `StoredObject`.
    requests: a `RequestRecord` per request, in order.
    page_size: most entries (objects and prefixes) in one list page.
    clock: the server's clock (seconds since the epoch) for `updated`.
    before_request: None, or called with the `RequestRecord` of each request
      before it is handled (outside the lock: it may change `objects`
      through `put`/`delete`).
  """

  def __init__(self, page_size=1000):
    self.objects: Dict[Tuple[str, str], StoredObject] = {}
    self.requests: List[RequestRecord] = []
    self.page_size = int(page_size)
    self.clock: Callable[[], float] = time.time
    self.before_request = None
    self.lock = threading.Lock()
    self._faults: List[_Fault] = []
    self._next_generation = 1700000000000000

  # Direct access for tests (no HTTP).

  def put(self, bucket, name, data) -> int:
    """Stores a new generation of `name`; returns it."""
    with self.lock:
      return self._put(bucket, name, data)

  def _put(self, bucket, name, data):
    self._next_generation += 1
    self.objects[(bucket, name)] = StoredObject(
        bytes(data), self._next_generation, self.clock())
    return self._next_generation

  def delete(self, bucket, name):
    with self.lock:
      self.objects.pop((bucket, name), None)

  def text(self, bucket, name) -> Optional[str]:
    with self.lock:
      obj = self.objects.get((bucket, name))
    return None if obj is None else obj.data.decode("utf-8")

  def age(self, bucket, name, seconds):
    """Moves `name`'s `updated` time `seconds` into the past."""
    with self.lock:
      self.objects[(bucket, name)].updated -= seconds

  def fail_next(self, status, count=1, method=None, message=None,
                applied=False):
    """Answers the next `count` requests (of `method`, if given) with HTTP
    `status`; with `applied`, after carrying each out (a lost answer)."""
    with self.lock:
      for _ in range(count):
        self._faults.append(_Fault(
            status, message or "injected error {}".format(status), method,
            applied))

  def _take_fault(self, method):
    with self.lock:
      for i, fault in enumerate(self._faults):
        if fault.method is None or fault.method == method:
          return self._faults.pop(i)
    return None

  # The server.

  def _make_httpd(self):
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.fake = self
    return httpd

  # Request handling (under `lock`); each returns (status, body dict|bytes).

  def handle(self, record: RequestRecord, body: bytes):
    """Carries out one request; returns (status, JSON dict or bytes)."""
    if self.before_request is not None:
      self.before_request(record)
    fault = self._take_fault(record.method)
    if fault is not None and not fault.applied:
      return fault.status, _error(fault.status, fault.message)
    with self.lock:
      status, answer = self._dispatch(record, body)
    if fault is not None:
      return fault.status, _error(fault.status, fault.message)
    return status, answer

  def _dispatch(self, record, body):
    query = record.query
    if record.method == "POST":
      if query.get("uploadType") != "media" or not query.get("name"):
        return 400, _error(400, "expected uploadType=media and a name")
      return self._upload(record.bucket, query["name"], body, query)
    if record.method == "GET" and record.name is None:
      return self._list(record.bucket, query)
    key = (record.bucket, record.name)
    obj = self.objects.get(key)
    if obj is None:
      return 404, _error(404, "No such object: {}/{}".format(*key))
    if not _generation_matches(obj, query):
      return 412, _error(412, _PRECONDITION_MESSAGE)
    if record.method == "GET":
      if "generation" in query and int(query["generation"]) != obj.generation:
        return 404, _error(404, "No such object: {}/{}#{}".format(
            record.bucket, record.name, query["generation"]))
      if query.get("alt") == "media":
        return 200, obj.data
      return 200, self._resource(key, obj)
    if record.method == "DELETE":
      del self.objects[key]
      return 204, b""
    return 405, _error(405, "method not allowed")

  def _upload(self, bucket, name, body, query):
    if not _generation_matches(self.objects.get((bucket, name)), query):
      return 412, _error(412, _PRECONDITION_MESSAGE)
    self._put(bucket, name, body)
    return 200, self._resource((bucket, name), self.objects[(bucket, name)])

  @staticmethod
  def _resource(key, obj):
    return {"kind": "storage#object", "bucket": key[0], "name": key[1],
            "generation": str(obj.generation), "metageneration": "1",
            "size": str(len(obj.data)), "updated": rfc3339(obj.updated),
            "timeCreated": rfc3339(obj.updated)}

  def _list(self, bucket, query):
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter")
    entries = {}  # name -> "item" or "prefix"
    for (b, name), obj in self.objects.items():
      if b != bucket or not name.startswith(prefix):
        continue
      rest = name[len(prefix):]
      if delimiter and delimiter in rest:
        entries[prefix + rest[:rest.index(delimiter) + 1]] = ("prefix", None)
      else:
        entries[name] = ("item", obj)
    names = sorted(n for n in entries if n > query.get("pageToken", ""))
    size = min(self.page_size, int(query.get("maxResults", self.page_size)))
    page = names[:size]
    answer = {"kind": "storage#objects"}
    items = [self._resource((bucket, n), entries[n][1]) for n in page
             if entries[n][0] == "item"]
    prefixes = [n for n in page if entries[n][0] == "prefix"]
    if items:
      answer["items"] = items
    if prefixes:
      answer["prefixes"] = prefixes
    if len(names) > size:
      answer["nextPageToken"] = page[-1]
    return 200, answer


def _generation_matches(obj, query):
  if "ifGenerationMatch" not in query:
    return True
  wanted = int(query["ifGenerationMatch"])
  return (obj.generation if obj is not None else 0) == wanted


def _error(status, message):
  return {"error": {"code": status, "message": message,
                    "errors": [{"message": message}]}}


class _Server(http.server.ThreadingHTTPServer):
  # Racing clients connect all at once; the default backlog of 5 would drop
  # some connection attempts (retried by the kernel after a second).
  request_queue_size = 64


class _Handler(http.server.BaseHTTPRequestHandler):
  """Parses a request into a `RequestRecord` for `self.server.fake`."""

  def log_message(self, *unused_args):  # Keep test output quiet.
    pass

  def _route(self):
    raw_path, _, raw_query = self.path.partition("?")
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(
        raw_query, keep_blank_values=True).items()}
    # Split before unquoting: "/" inside an object name arrives as %2F.
    parts = raw_path.split("/")
    if raw_path.startswith("/upload/storage/v1/b/"):
      parts = [""] + parts[2:]  # as if without "/upload"
    # parts: ["", "storage", "v1", "b", B, "o"(, N)]
    if (len(parts) not in (6, 7) or parts[1:4] != ["storage", "v1", "b"] or
        parts[5] != "o"):
      return None
    bucket = urllib.parse.unquote(parts[4])
    name = urllib.parse.unquote(parts[6]) if len(parts) == 7 else None
    return RequestRecord(self.command, bucket, name, query)

  def _answer(self):
    length = int(self.headers.get("Content-Length") or 0)
    body = self.rfile.read(length) if length else b""
    record = self._route()
    fake = self.server.fake
    if record is None:
      status, answer = 404, _error(404, "Not Found: " + self.path)
    else:
      with fake.lock:
        fake.requests.append(record)
      status, answer = fake.handle(record, body)
      record.status = status
    if isinstance(answer, dict):
      data = json.dumps(answer).encode("utf-8")
      content_type = "application/json; charset=UTF-8"
    else:
      data = answer
      content_type = "application/octet-stream"
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  do_GET = _answer  # pylint: disable=invalid-name
  do_POST = _answer  # pylint: disable=invalid-name
  do_DELETE = _answer  # pylint: disable=invalid-name
