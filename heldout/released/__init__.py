"""The released heldout-training artifacts: download, published estimates, agreement."""

from heldout.released.agreement import agreement_report
from heldout.released.agreement import AgreementReport
from heldout.released.agreement import write_report
from heldout.released.byte_stream import FetchError
from heldout.released.byte_stream import ResumableStream
from heldout.released.catalog import ARCHIVES
from heldout.released.catalog import DEFAULT_BASE_URL
from heldout.released.catalog import get_archive
from heldout.released.catalog import ReleasedArchive
from heldout.released.downloader import download_experiment
from heldout.released.downloader import DownloadSummary
from heldout.released.downloader import MARKER_FILENAME
from heldout.released.extract import extract_stream
from heldout.released.extract import Selection
from heldout.released.gzip_stream import GzipStreamReader
from heldout.released.published import align_by_filename
from heldout.released.published import original_index_from_tfds_ids
from heldout.released.published import PublishedScores
from heldout.released.published import read_cscores
from heldout.released.published import read_high_influence_pairs
from heldout.released.published import read_imagenet_index
from heldout.released.published import read_infl_matrix
from heldout.released.published import read_published
from heldout.released.samis_scores import read_samis_pickle
from heldout.released.samis_scores import to_tfds_order
