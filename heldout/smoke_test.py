import sys
from absl.testing import absltest
import tensorflow as tf
import sonnet as snt

class SmokeTest(absltest.TestCase):
  def test_imports(self):
    print(sys.executable, tf.__version__, snt.__version__)
    self.assertTrue(tf.__version__.startswith("2.21"))

if __name__ == "__main__":
  absltest.main()
