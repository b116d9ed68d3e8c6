"""Tests of the long-tail superclass construction and the rank table."""

from absl.testing import absltest
import numpy as np

from heldout.data import dataset as dataset_lib
from heldout.data import digits
from heldout.evaluations import mislabeled
from heldout.evaluations import subgroups


class LongTailTest(absltest.TestCase):

  def test_digits_long_tail(self):
    data = digits.load_digits()
    dataset, tail = subgroups.long_tail_dataset(data, decay=0.5, seed=3)
    ranks = subgroups.subclass_ranks(subgroups.DIGITS_SUPERCLASSES, 3)
    train = data.train
    for c, (superclass, rank) in ranks.items():
      mine = tail.subclass == c
      expected = max(1, int(round(0.5 ** rank * np.sum(train.labels == c))))
      self.assertEqual(int(mine.sum()), expected, c)
      self.assertTrue((tail.rank[mine] == rank).all())
      self.assertTrue((tail.split.labels[mine] == superclass).all())
      # Each kept example is the source example it claims to be.
      positions = train.positions_of(tail.original_id[mine])
      np.testing.assert_array_equal(train.labels[positions], c)
      np.testing.assert_array_equal(train.images[positions],
                                    tail.split.images[mine])
    np.testing.assert_array_equal(tail.split.index,
                                  np.arange(len(tail.split)))
    self.assertEqual(sorted(r for _, r in ranks.values()),
                     [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    self.assertEqual(dataset.num_classes, 2)
    self.assertLen(dataset.test, len(data.test))  # test kept whole
    with self.assertRaisesRegex(ValueError, "two superclasses"):
      subgroups.subclass_ranks(((0, 1), (1, 2)), 0)

  def test_cifar100_superclasses(self):
    groups = subgroups.CIFAR100_SUPERCLASSES
    self.assertLen(groups, 20)
    self.assertTrue(all(len(g) == 5 for g in groups))
    self.assertEqual(sorted(f for g in groups for f in g), list(range(100)))
    # A few of the hierarchy's documented members: aquatic mammals (beaver 4,
    # dolphin 30, otter 55, seal 72, whale 95) and people (baby 2, boy 11,
    # girl 35, man 46, woman 98).
    self.assertEqual(groups[0], (4, 30, 55, 72, 95))
    self.assertEqual(groups[14], (2, 11, 35, 46, 98))
    rng = np.random.default_rng(0)
    split = dataset_lib.SplitData(
        images=np.zeros((2000, 2, 2, 1), np.float32),
        labels=np.repeat(np.arange(100), 20).astype(np.int64),
        index=rng.permutation(2000).astype(np.int64))
    tail = subgroups.long_tail_split(split, groups, decay=0.5, seed=1)
    self.assertEqual(sorted(set(tail.split.labels.tolist())), list(range(20)))
    counts = np.bincount(tail.rank)
    np.testing.assert_array_equal(counts, [20 * 20, 20 * 10, 20 * 5, 20 * 2,
                                           20 * 1])

  def test_rank_table(self):
    data = digits.load_digits()
    _, tail = subgroups.long_tail_dataset(data, seed=0)
    index = tail.split.index
    # A score that is the rank itself puts the rare ranks first.
    table = subgroups.rank_table(
        {"rank": (index, tail.rank.astype(float), mislabeled.HIGH),
         "minus": (index, -tail.rank.astype(float), mislabeled.HIGH)}, tail)
    row = table["rank"]
    means = [v for k, v in row.items() if k.startswith("rank")]
    self.assertEqual(means, sorted(means))
    self.assertEqual(row["AUROC rare"], 1.0)
    self.assertEqual(table["minus"]["AUROC rare"], 0.0)
    self.assertIn("AUROC rare", subgroups.rank_table_text(table))


if __name__ == "__main__":
  absltest.main()
