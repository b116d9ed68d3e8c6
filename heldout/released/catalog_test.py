"""Tests of the built-in table of released archives (facts from released-format.md)."""

from absl.testing import absltest
from absl.testing import parameterized

from heldout import errors
from heldout.released import catalog


class CatalogTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("cifar10", "cifar10-inception", 239, "bc3b75203381709f8224810946be14b1"),
      ("cifar100", "cifar100-inception", 244, "f87218368528afa6e2407c8410f1ffa1"),
      ("imagenet", "imagenet-resnet50", 367, "64c39ef7702462b83959af9de622b4b8"))
  def test_entries(self, name, size_gb, md5):
    archive = catalog.get_archive(name)
    self.assertEqual(archive.md5, md5)
    self.assertEqual(archive.approx_size_bytes, size_gb * 10**9)
    self.assertEqual(archive.filename, name + ".tar.gz")
    self.assertEqual(archive.gs_url,
                     "gs://gresearch/heldout-training-checkpoints/{}.tar.gz".format(name))
    self.assertEqual(
        archive.http_url,
        "http://storage.googleapis.com/gresearch/heldout-training-checkpoints/"
        "{}.tar.gz".format(name))

  def test_exactly_three_experiments(self):
    self.assertEqual(sorted(catalog.ARCHIVES), ["cifar10-inception", "cifar100-inception",
                                                "imagenet-resnet50"])

  def test_url_for_mirror(self):
    archive = catalog.get_archive("cifar10-inception")
    self.assertEqual(catalog.url_for(archive, "http://127.0.0.1:8000/m/"),
                     "http://127.0.0.1:8000/m/cifar10-inception.tar.gz")
    self.assertEqual(catalog.url_for(archive, "/data/mirror"),
                     "/data/mirror/cifar10-inception.tar.gz")

  def test_unknown(self):
    with self.assertRaisesRegex(errors.ExperimentError,
                                "unknown experiment 'mnist'; expected one of cifar10"):
      catalog.get_archive("mnist")


if __name__ == "__main__":
  absltest.main()
