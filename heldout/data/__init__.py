"""Datasets with explicit example ids, loaders, and CIFAR augmentation."""

from heldout.data import augment
from heldout.data import dataset
from heldout.data import digits
from heldout.data import npz_format
from heldout.data import registry
from heldout.data import tfds_data
from heldout.data.augment import random_crop_and_flip
from heldout.data.dataset import Dataset
from heldout.data.dataset import DatasetError
from heldout.data.dataset import SplitData
from heldout.data.digits import load_digits
from heldout.data.npz_format import read_npz_dataset
from heldout.data.npz_format import write_npz_dataset
from heldout.data.registry import DATASET_NAMES
from heldout.data.registry import load_dataset
from heldout.data.tfds_data import load_tfds

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "DatasetError",
    "SplitData",
    "augment",
    "dataset",
    "digits",
    "load_dataset",
    "load_digits",
    "load_tfds",
    "npz_format",
    "random_crop_and_flip",
    "read_npz_dataset",
    "registry",
    "tfds_data",
    "write_npz_dataset",
]
