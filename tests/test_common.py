"""scikit-learn's estimator checks on every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvoxel import MassUnivariateOLS, VoxelMasker

ESTIMATORS = [
    MassUnivariateOLS(),
    MassUnivariateOLS(fit_intercept=True),
    MassUnivariateOLS(chunk_size=3, n_jobs=2),
    VoxelMasker(),
    VoxelMasker(mask_strategy="variance"),
    VoxelMasker(mask_strategy="epi"),
]


def expected_failed_checks(estimator):
    """Checks that cannot apply, with the reason."""
    if isinstance(estimator, VoxelMasker) and estimator.mask is None:
        # VoxelMasker's allow_nan tag is True (NaN is accepted outside the mask).
        reason = (
            "with the allow_nan tag, the check puts 10 NaN into its 30 x 3 data, "
            "in every one of the 3 features (2, 5 and 3); a computed mask keeps "
            "only voxels finite in every sample, so it is empty and fit rightly "
            "raises ValueError (shown in tests/test_masking.py). Pickling is "
            "tested in tests/test_masking.py and tests/test_composition.py."
        )
        return {"check_estimators_pickle": reason}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    """The estimator passes scikit-learn's check."""
    check(estimator)
