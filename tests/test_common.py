"""scikit-learn's estimator checks on every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvoxel import MassUnivariateOLS

ESTIMATORS = [
    MassUnivariateOLS(),
    MassUnivariateOLS(fit_intercept=True),
    MassUnivariateOLS(chunk_size=3),
]


def expected_failed_checks(estimator):
    """Checks that cannot apply, with the reason (none so far)."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    """The estimator passes scikit-learn's check."""
    check(estimator)
