"""The built-in table of released heldout-training archives.

Facts from the upstream README (google-research/heldout-influence-estimation)
and `/work/shared/spec/released-format.md`: one `.tar.gz` per experiment in the
`gresearch` bucket, reachable as `gs://` and over plain HTTP(S).
"""

import dataclasses
import posixpath

from heldout import errors

GCS_BASE_URL = "gs://gresearch/heldout-training-checkpoints"
DEFAULT_BASE_URL = "http://storage.googleapis.com/gresearch/heldout-training-checkpoints"

_GB = 10**9


@dataclasses.dataclass(frozen=True)
class ReleasedArchive:
  """One released archive.

  Attributes:
    experiment: the experiment name, also the archive's top-level folder.
    filename: `<experiment>.tar.gz`.
    approx_size_bytes: the size the upstream README gives ("239GB"), rounded;
      only used as the progress bar's total when the server sends none.
    md5: hex MD5 of the whole archive, as published upstream.
  """
  experiment: str
  filename: str
  approx_size_bytes: int
  md5: str

  @property
  def gs_url(self):
    return posixpath.join(GCS_BASE_URL, self.filename)

  @property
  def http_url(self):
    return url_for(self, DEFAULT_BASE_URL)


def _archive(experiment, size_gb, md5):
  return ReleasedArchive(experiment=experiment,
                         filename="{}.tar.gz".format(experiment),
                         approx_size_bytes=size_gb * _GB, md5=md5)


ARCHIVES = {
    a.experiment: a for a in (
        _archive("cifar10-inception", 239, "bc3b75203381709f8224810946be14b1"),
        _archive("cifar100-inception", 244, "f87218368528afa6e2407c8410f1ffa1"),
        _archive("imagenet-resnet50", 367, "64c39ef7702462b83959af9de622b4b8"),
    )
}


def get_archive(experiment):
  """The catalog entry of `experiment`.

  Raises:
    ExperimentError: for a name that is not in the table, listing the names.
  """
  try:
    return ARCHIVES[experiment]
  except KeyError:
    raise errors.ExperimentError(
        "unknown experiment {!r}; expected one of {}".format(
            experiment, ", ".join(sorted(ARCHIVES)))) from None


def url_for(archive, base_url=None):
  """`<base_url>/<experiment>.tar.gz`; `base_url` defaults to the public HTTP one.

  `base_url` may be `http(s)://...`, `gs://...`, a `file://` URL or a local
  folder (a mirror).
  """
  base = (base_url or DEFAULT_BASE_URL).rstrip("/")
  return base + "/" + archive.filename
