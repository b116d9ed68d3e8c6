"""Readers of the released heldout-training artifacts."""

from heldout.readers.aux_arrays import AUX_KEYS
from heldout.readers.aux_arrays import AuxArrays
from heldout.readers.aux_arrays import read_aux_arrays
from heldout.readers.aux_arrays import validate_aux_arrays
from heldout.readers.aux_arrays import write_aux_arrays
from heldout.readers.experiment import Experiment
from heldout.readers.experiment import Run
from heldout.readers.experiment import scan_experiment
