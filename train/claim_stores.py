"""Where run claims live: a file system with an exclusive create.

A claim store holds the claim files of `train.claims.RunClaims`. It needs
what a plain read/write interface (`tf.io.gfile`) does not offer: a create
that fails when the file exists, so two workers never both claim a run.

* `LocalClaimStore`: local and shared POSIX file systems (NFS, Lustre,
  GPFS): `O_CREAT | O_EXCL`; a stale claim is taken over by writing a file
  beside it and renaming it over (the last rename wins; the taker reads it
  back after `settle_s`).
* `GcsClaimStore`: `gs://bucket/prefix/...` through the GCS JSON API, every
  write conditional on the object's generation (`ifGenerationMatch`: 0 to
  create, the generation read to replace, refresh or delete), so of several
  workers creating or taking over a claim at once exactly one succeeds.

`for_path` picks the store of an output folder.
"""

import calendar
import dataclasses
import json
import os
import random
import re
import threading
import time
import urllib.parse
import uuid
from typing import List, Optional


@dataclasses.dataclass(frozen=True)
class StoredClaim:
  """A claim file as stored.

  Attributes:
    text: its content.
    mtime: seconds since the epoch of its last write or refresh.
    version: what `replace`, `refresh` and `delete` compare against (opaque;
      None where the store has no versions).
  """
  text: str
  mtime: float
  version: object = None


class LocalClaimStore:
  """Claims on a local or shared POSIX file system."""

  # Several takers may rename over a stale claim at once; each reads back
  # which one won after this long.
  settle_s = 1.0

  def create(self, path, text) -> bool:
    """Creates `path` holding `text` if it does not exist; True if it did not."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      f.write(text)
    return True

  def read(self, path) -> Optional[StoredClaim]:
    """The claim at `path`, or None."""
    try:
      mtime = os.path.getmtime(path)
      with open(path) as f:
        text = f.read()
    except FileNotFoundError:
      return None
    return StoredClaim(text=text, mtime=mtime)

  def replace(self, path, text, version) -> bool:  # pylint: disable=unused-argument
    """Writes `text` over the claim at `path` (the last writer wins: read it
    back after `settle_s`)."""
    mine = "{}.{}".format(path, uuid.uuid4().hex[:12])
    with open(mine, "w") as f:
      f.write(text)
    os.replace(mine, path)
    return True

  def refresh(self, path, text, version) -> bool:  # pylint: disable=unused-argument
    """Marks the claim alive now (our `text` at `version`); False if gone."""
    try:
      os.utime(path)
    except FileNotFoundError:
      return False
    return True

  def delete(self, path, version) -> None:  # pylint: disable=unused-argument
    try:
      os.remove(path)
    except FileNotFoundError:
      pass

  def list(self, folder) -> List[str]:
    """Names of the files in `folder` ([] if it does not exist)."""
    try:
      return sorted(os.listdir(folder))
    except FileNotFoundError:
      return []


DEFAULT_GCS_ENDPOINT = "https://storage.googleapis.com"
# Google's client libraries send every request to this host (e.g.
# `http://127.0.0.1:9023`, an emulator) and use no credentials when it is set.
EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"
_GCS_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
# Throttling and server-side failures: worth another try.
_RETRIED_STATUSES = frozenset([408, 429, 500, 502, 503, 504])
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+-]\d{2}:\d{2})$")


class GcsError(IOError):
  """A GCS request failed.

  Attributes:
    path: the `gs://` path it was about.
    status: the HTTP status (None when no response came).
    message: the server's message (or why no response came).
  """

  def __init__(self, path, status, message, what="request"):
    self.path = path
    self.status = status
    self.message = message
    super().__init__("{}: GCS {} failed: {}: {}".format(
        path, what, "HTTP {}".format(status) if status else "no response",
        message))


def split_gcs_path(path):
  """`gs://bucket/a/b` -> ("bucket", "a/b").

  Raises:
    ValueError: if `path` is not a `gs://` path with a bucket.
  """
  path = str(path)
  if not path.startswith("gs://"):
    raise ValueError("expected a gs://bucket/... path, got {!r}".format(path))
  bucket, _, name = path[len("gs://"):].partition("/")
  if not bucket:
    raise ValueError("expected a gs://bucket/... path, got {!r} (no "
                     "bucket)".format(path))
  return bucket, name


def rfc3339_seconds(value) -> float:
  """Seconds since the epoch of an RFC 3339 time ("2024-05-01T12:00:00.123Z").

  Raises:
    ValueError: if `value` is not one.
  """
  match = _RFC3339_RE.match(str(value))
  if not match:
    raise ValueError("not an RFC 3339 time: {!r}".format(value))
  year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
  seconds = calendar.timegm((year, month, day, hour, minute, second))
  if match.group(7):
    seconds += float("0" + match.group(7))
  zone = match.group(8)
  if zone not in ("Z", "z"):
    sign = 1 if zone[0] == "+" else -1
    seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
  return float(seconds)


def _quote(part):
  # Object names may hold any character: "/" inside a name is %2F in the URL
  # path (https://cloud.google.com/storage/docs/request-endpoints#encoding).
  return urllib.parse.quote(part, safe="")


class GcsClaimStore:
  """Claims as objects on Google Cloud Storage (`gs://bucket/prefix/...`).

  Writes are compare-and-swap on the object's generation: `create` uploads
  with `ifGenerationMatch=0` (fails if the object exists), `replace` and
  `refresh` upload with the generation the caller read (fails once anyone
  else wrote it), `delete` deletes that generation only. The answer is
  decisive, so `settle_s` is 0: no read-back delay after a takeover.

  A refresh rewrites the claim (a new generation with a new `updated`
  time): GCS has no "touch". The age of a claim is the local clock minus
  the object's `updated` time, which GCS's clock sets: workers need clocks
  in sync with it (NTP, as on every cloud VM); the default
  `stale_after_s` of 10 minutes leaves ample room for skew of seconds.

  Requests go to https://storage.googleapis.com with the application
  default credentials (`google.auth.default`), or, where the environment
  variable STORAGE_EMULATOR_HOST is set (as for Google's client libraries),
  to that host without credentials. Throttling (429) and server errors
  (5xx) are retried with exponential backoff; a retried write that then
  meets a failed precondition checks whether its earlier attempt landed.
  Any other failure raises `GcsError` naming the path, status and message.
  """

  settle_s = 0.0

  def __init__(self, endpoint=None, timeout_s=60.0, attempts=5,
               backoff_s=0.5):
    """A store that sends its requests to `endpoint`.

    Args:
      endpoint: base URL of the JSON API; by default STORAGE_EMULATOR_HOST
        if set, else https://storage.googleapis.com. Any endpoint but the
        latter is used without credentials (an emulator or a test double).
      timeout_s: seconds to wait for a connection and for each response.
      attempts: tries of a request that meets 429/5xx or no response.
      backoff_s: wait before the first retry (doubling, with jitter).

    Raises:
      ValueError: for a non-positive `timeout_s` or `attempts`.
    """
    if timeout_s <= 0:
      raise ValueError("`timeout_s` must be positive, got {}".format(
          timeout_s))
    if attempts < 1:
      raise ValueError("`attempts` must be at least 1, got {}".format(
          attempts))
    emulator = os.environ.get(EMULATOR_HOST_ENV)
    if endpoint is None:
      endpoint = emulator or DEFAULT_GCS_ENDPOINT
      self.anonymous = bool(emulator)
    else:
      self.anonymous = endpoint.rstrip("/") != DEFAULT_GCS_ENDPOINT
    if "://" not in endpoint:
      endpoint = "http://" + endpoint
    self.endpoint = endpoint.rstrip("/")
    self.timeout_s = float(timeout_s)
    self.attempts = int(attempts)
    self.backoff_s = float(backoff_s)
    self._credentials = None
    self._credentials_lock = threading.Lock()
    self._local = threading.local()  # a session per thread (heartbeats)

  def _session(self):
    session = getattr(self._local, "session", None)
    if session is None:
      import requests  # pylint: disable=g-import-not-at-top
      if self.anonymous:
        session = requests.Session()
      else:
        # pylint: disable=g-import-not-at-top
        import google.auth
        from google.auth.transport import requests as auth_requests
        # pylint: enable=g-import-not-at-top
        with self._credentials_lock:
          if self._credentials is None:
            self._credentials, _ = google.auth.default(scopes=_GCS_SCOPES)
        session = auth_requests.AuthorizedSession(self._credentials)
      self._local.session = session
    return session

  def _object_url(self, bucket, name):
    return "{}/storage/v1/b/{}/o/{}".format(self.endpoint, _quote(bucket),
                                            _quote(name))

  def _request(self, method, url, path, what, **kwargs):
    """Sends a request, retrying throttling, 5xx and lost connections.

    Returns:
      (response, retried): the last response (any status but a retried one)
      and whether an earlier attempt was sent (it may have been applied).

    Raises:
      GcsError: when every attempt met a retried status or no response.
    """
    import requests  # pylint: disable=g-import-not-at-top
    session = self._session()
    for attempt in range(self.attempts):
      if attempt:
        delay = self.backoff_s * 2 ** (attempt - 1)
        time.sleep(delay * random.uniform(0.5, 1.0))
      try:
        response = session.request(method, url, timeout=self.timeout_s,
                                   **kwargs)
      except (requests.ConnectionError, requests.Timeout) as e:
        if attempt + 1 == self.attempts:
          raise GcsError(path, None, "{}: {}".format(type(e).__name__, e),
                         what) from e
        continue
      if (response.status_code not in _RETRIED_STATUSES or
          attempt + 1 == self.attempts):
        return response, attempt > 0
    raise AssertionError("unreachable: the last attempt returns or raises")

  @staticmethod
  def _message(response):
    try:
      return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
      return response.text[:500] or response.reason

  def _fail(self, response, path, what):
    return GcsError(path, response.status_code, self._message(response), what)

  def _upload(self, path, text, generation, what, refused=(412,)) -> bool:
    bucket, name = split_gcs_path(path)
    response, retried = self._request(
        "POST", "{}/upload/storage/v1/b/{}/o".format(self.endpoint,
                                                     _quote(bucket)),
        path, what,
        params={"uploadType": "media", "name": name,
                "ifGenerationMatch": str(generation)},
        data=text.encode("utf-8"),
        headers={"Content-Type": "application/json"})
    if response.status_code == 200:
      return True
    if response.status_code in refused:
      if retried:
        # An earlier attempt may have landed and this one found it there;
        # our text (it names a unique owner and time) tells.
        current = self.read(path)
        return current is not None and current.text == text
      return False
    raise self._fail(response, path, what)

  def create(self, path, text) -> bool:
    """Creates `path` holding `text` if absent; True if it was absent."""
    return self._upload(path, text, 0, "create")

  def read(self, path) -> Optional[StoredClaim]:
    """The claim at `path` (version: its generation), or None."""
    bucket, name = split_gcs_path(path)
    url = self._object_url(bucket, name)
    for _ in range(3):
      response, _ = self._request("GET", url, path, "read (metadata)")
      if response.status_code == 404:
        return None
      if response.status_code != 200:
        raise self._fail(response, path, "read (metadata)")
      meta = response.json()
      generation = int(meta["generation"])
      media, _ = self._request(
          "GET", url, path, "read",
          params={"alt": "media", "generation": str(generation)})
      if media.status_code == 404:
        continue  # replaced or deleted since: look again
      if media.status_code != 200:
        raise self._fail(media, path, "read")
      return StoredClaim(text=media.content.decode("utf-8", "replace"),
                         mtime=rfc3339_seconds(meta["updated"]),
                         version=generation)
    return None

  def replace(self, path, text, version) -> bool:
    """Writes `text` over generation `version` of `path`; False if another
    writer changed it first (of several at once, exactly one wins)."""
    return self._upload(path, text, int(version), "replace")

  def refresh(self, path, text, version) -> bool:
    """Rewrites our `text` over generation `version` (a new `updated`);
    False if the claim was taken over or is gone."""
    return self._upload(path, text, int(version), "refresh",
                        refused=(404, 412))

  def delete(self, path, version) -> None:
    """Deletes generation `version` of `path`; nothing if it changed or is
    gone."""
    bucket, name = split_gcs_path(path)
    response, _ = self._request(
        "DELETE", self._object_url(bucket, name), path, "delete",
        params={"ifGenerationMatch": str(int(version))})
    if response.status_code not in (200, 204, 404, 412):
      raise self._fail(response, path, "delete")

  def list(self, folder) -> List[str]:
    """Names of the objects directly in `folder` ([] if there are none)."""
    bucket, prefix = split_gcs_path(folder)
    prefix = prefix.rstrip("/") + "/" if prefix.rstrip("/") else ""
    url = "{}/storage/v1/b/{}/o".format(self.endpoint, _quote(bucket))
    names, token = [], None
    while True:
      params = {"prefix": prefix, "delimiter": "/",
                "fields": "items(name),nextPageToken"}
      if token:
        params["pageToken"] = token
      response, _ = self._request("GET", url, folder, "list", params=params)
      if response.status_code != 200:
        raise self._fail(response, folder, "list")
      page = response.json()
      for item in page.get("items", ()):
        rest = item["name"][len(prefix):]
        if rest and "/" not in rest:  # not the folder marker ("x/")
          names.append(rest)
      token = page.get("nextPageToken")
      if not token:
        return sorted(names)


_GCS_STORES = {}
_GCS_STORES_LOCK = threading.Lock()


def for_path(path):
  """The claim store for the output folder `path`.

  Raises:
    ValueError: for a URL scheme without an exclusive create.
  """
  path = str(path)
  if "://" not in path:
    return LocalClaimStore()
  scheme = path.split("://", 1)[0]
  if scheme == "gs":
    split_gcs_path(path)
    # One store (and credential lookup) per endpoint.
    endpoint = os.environ.get(EMULATOR_HOST_ENV) or DEFAULT_GCS_ENDPOINT
    with _GCS_STORES_LOCK:
      if endpoint not in _GCS_STORES:
        _GCS_STORES[endpoint] = GcsClaimStore()
      return _GCS_STORES[endpoint]
  raise ValueError(
      "{}: run claims need a store with an exclusive create (a local or "
      "shared file system, or gs://); {}:// has none here. Pass --noclaims "
      "and give each worker a disjoint range of runs".format(path, scheme))
