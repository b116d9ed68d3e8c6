"""Argument validation: bad values raise ValueError naming the argument."""

from absl.testing import absltest
from absl.testing import parameterized

from heldout.influence_functions import arguments


class ArgumentsTest(parameterized.TestCase):

  def test_defaults_are_kronfluences(self):
    self.assertEqual(arguments.FactorArgs().strategy, "ekfac")
    self.assertEqual(arguments.FactorArgs().fisher, "true")
    self.assertEqual(arguments.ScoreArgs().damping, 1e-8)
    self.assertEqual(arguments.ScoreArgs().measurement, "ce")

  @parameterized.named_parameters(
      ("strategy", dict(strategy="lissa"), "`strategy` must be one of"),
      ("fisher", dict(fisher="sampled"), "`fisher` must be one of"),
      ("dtype", dict(dtype="float16"), "`dtype` must be one of"),
      ("seed", dict(seed=-1), "`seed` must be an integer >= 0"))
  def test_bad_factor_args(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      arguments.FactorArgs(**kwargs)

  @parameterized.named_parameters(
      ("negative", dict(damping=-1.0), "`damping` must be a number >= 0"),
      ("word", dict(damping="auto"), "or 'heuristic', got 'auto'"),
      ("nan", dict(damping=float("nan")), "`damping`"),
      ("measurement", dict(measurement="loss"), "`measurement` must be one"),
      ("rank", dict(query_rank=0), "`query_rank` must be None or an integer"))
  def test_bad_score_args(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      arguments.ScoreArgs(**kwargs)

  def test_damping_from_a_flag(self):
    self.assertEqual(arguments.ScoreArgs(damping="0.5").damping, 0.5)
    self.assertEqual(arguments.ScoreArgs(damping="heuristic").damping,
                     "heuristic")


if __name__ == "__main__":
  absltest.main()
