"""Test helpers for the data loaders (not a public API)."""

import os

import tensorflow_datasets as tfds


def write_tfds_metadata(data_dir, name, num_examples, splits=("train", "test")):
  """Writes a TFDS dataset's metadata so `tfds.testing.mock_data` can use it.

  `tfds.load(..., batch_size=-1)` sizes its single batch from the split
  metadata, which the mock's code-only mode lacks; with this metadata in
  `data_dir`, mock with `policy=tfds.testing.MockPolicy.USE_FILES`.

  Args:
    data_dir: the TFDS data directory of the test.
    name: dataset name, e.g. "cifar10:3.0.2".
    num_examples: examples per split.
    splits: split names.
  """
  builder = tfds.builder(name, data_dir=data_dir)
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=split, shard_lengths=[num_examples], num_bytes=0,
                          filename_template=None)
      for split in splits]))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)
