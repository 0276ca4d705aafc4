"""Tests for skvoxel.scoring: voxel_r2_score and voxel_r2_scorer."""

import numpy as np
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skvoxel import MassUnivariateOLS, VoxelMasker, voxel_r2_score, voxel_r2_scorer

from .conftest import make_design, make_mask


def hand_r2(y_true, y_pred, weights=None):
    """Mean over columns of 1 - RSS / TSS, written out (weighted if asked)."""
    w = np.ones(len(y_true)) if weights is None else weights
    mean = (w[:, None] * y_true).sum(axis=0) / w.sum()
    rss = (w[:, None] * (y_true - y_pred) ** 2).sum(axis=0)
    tss = (w[:, None] * (y_true - mean) ** 2).sum(axis=0)
    return np.mean(1 - rss / tss)


def image_problem(rng, n_samples=30, spatial_shape=(4, 5, 3)):
    """A design, a mask, and images: a linear signal inside, zeros outside."""
    X = make_design(n_samples, 3, rng=rng)
    mask = make_mask(spatial_shape, rng=rng)
    images = np.zeros((n_samples, *spatial_shape))
    n_voxels = int(mask.sum())
    images[:, mask] = X @ rng.normal(size=(3, n_voxels))
    images[:, mask] += rng.normal(size=(n_samples, n_voxels))
    return X, mask, images


@pytest.mark.parametrize("which", ["y_true", "y_pred"])
def test_voxel_r2_score_refuses_complex_values_by_name(rng, which):
    """A complex y_true or y_pred: a ValueError naming it."""
    arrays = {"y_true": rng.normal(size=(5, 4)), "y_pred": rng.normal(size=(5, 4))}
    arrays[which] = arrays[which] + 1j
    with pytest.raises(
        ValueError, match=rf"^Complex data not supported: {which} has dtype"
    ):
        voxel_r2_score(arrays["y_true"], arrays["y_pred"])


def test_voxel_r2_score_is_mean_r2_over_mask_voxels(rng):
    """With a mask: the mean R^2 of the in-mask voxels, written out."""
    mask = make_mask((4, 5, 3), rng=rng)
    y_true = rng.normal(size=(20, 4, 5, 3))
    y_pred = y_true + rng.normal(scale=0.7, size=y_true.shape)
    score = voxel_r2_score(y_true, y_pred, mask=mask)
    assert isinstance(score, float)
    expected = hand_r2(y_true[:, mask], y_pred[:, mask])
    np.testing.assert_allclose(score, expected, rtol=1e-12)
    # Without a mask, every voxel; 2-D and 1-D data as r2_score takes them.
    flat_true, flat_pred = y_true.reshape(20, -1), y_pred.reshape(20, -1)
    np.testing.assert_allclose(
        voxel_r2_score(y_true, y_pred), hand_r2(flat_true, flat_pred), rtol=1e-12
    )
    np.testing.assert_allclose(
        voxel_r2_score(flat_true, flat_pred), hand_r2(flat_true, flat_pred), rtol=1e-12
    )
    np.testing.assert_allclose(
        voxel_r2_score(flat_true[:, 0], flat_pred[:, 0]),
        hand_r2(flat_true[:, :1], flat_pred[:, :1]),
        rtol=1e-12,
    )
    weights = rng.uniform(0.5, 2.0, size=20)
    np.testing.assert_allclose(
        voxel_r2_score(y_true, y_pred, mask=mask, sample_weight=weights),
        hand_r2(y_true[:, mask], y_pred[:, mask], weights),
        rtol=1e-12,
    )


def test_voxel_r2_score_means_mass_univariate_ols_score(rng):
    """Predictions put back into images score as MassUnivariateOLS.score."""
    X, mask, images = image_problem(rng)
    masker = VoxelMasker(mask).fit(images)
    Y = masker.transform(images)
    model = MassUnivariateOLS().fit(X[:20], Y[:20])
    predicted = masker.inverse_transform(model.predict(X[20:]))
    assert voxel_r2_score(images[20:], predicted, mask=mask) == model.score(
        X[20:], Y[20:]
    )


def test_zeros_outside_the_mask_do_not_count(rng):
    """Outside voxels, zero in data and prediction, would each score 1."""
    X, mask, images = image_problem(rng)
    model = TransformedTargetRegressor(
        regressor=MassUnivariateOLS(), transformer=VoxelMasker(mask)
    ).fit(X[:20], images[:20])
    predicted = model.predict(X[20:])
    in_mask = voxel_r2_score(images[20:], predicted, mask=mask)
    every_voxel = voxel_r2_score(images[20:], predicted)
    n_in, n_all = mask.sum(), mask.size
    np.testing.assert_allclose(
        every_voxel, (n_in * in_mask + (n_all - n_in) * 1.0) / n_all, rtol=1e-12
    )
    assert in_mask < every_voxel
    assert voxel_r2_scorer(model, X[20:], images[20:]) == in_mask


def test_voxel_r2_scorer_uses_the_fitted_masker(rng):
    """The scorer equals regressor_.score on transformer_.transform(y)."""
    X, mask, images = image_problem(rng)
    for masker in (VoxelMasker(mask), VoxelMasker()):
        model = TransformedTargetRegressor(
            regressor=MassUnivariateOLS(), transformer=masker
        ).fit(X[:20], images[:20])
        expected = model.regressor_.score(
            X[20:], model.transformer_.transform(images[20:])
        )
        assert voxel_r2_scorer(model, X[20:], images[20:]) == expected
        # Also when the target regressor ends a pipeline.
        wrapped = make_pipeline(FunctionTransformer(), model).fit(X[:20], images[:20])
        assert voxel_r2_scorer(wrapped, X[20:], images[20:]) == expected
    # Without a masker, every column: the estimator's own score.
    Y = images[:, mask]
    plain = MassUnivariateOLS().fit(X[:20], Y[:20])
    assert voxel_r2_scorer(plain, X[20:], Y[20:]) == plain.score(X[20:], Y[20:])


def test_default_scoring_cannot_score_images(rng):
    """Why the scorer exists: r2_score rejects images; cross_val_score gives NaN."""
    X, mask, images = image_problem(rng)
    model = TransformedTargetRegressor(
        regressor=MassUnivariateOLS(), transformer=VoxelMasker(mask)
    )
    with pytest.raises(ValueError, match="Found array with dim 4"):
        model.fit(X, images).score(X, images)
    with pytest.warns(UserWarning, match="Scoring failed"):
        default = cross_val_score(model, X, images, cv=KFold(3))
    assert np.all(np.isnan(default))
    scores = cross_val_score(model, X, images, cv=KFold(3), scoring=voxel_r2_scorer)
    assert np.all(np.isfinite(scores))


def test_voxel_r2_score_bad_input(rng):
    """Mismatched shapes and masks are ValueErrors naming what was received."""
    y = rng.normal(size=(5, 4, 3))
    with pytest.raises(
        ValueError,
        match=r"y_true has shape \(5, 4, 3\) but y_pred has shape \(5, 12\)",
    ):
        voxel_r2_score(y, y.reshape(5, 12))
    with pytest.raises(
        ValueError, match=r"mask has shape \(3, 4\), but images have spatial shape"
    ):
        voxel_r2_score(y, y, mask=np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="selects no voxel"):
        voxel_r2_score(y, y, mask=np.zeros((4, 3), dtype=bool))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        voxel_r2_score(y, y, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="Input y_pred contains NaN"):
        voxel_r2_score(y, np.full_like(y, np.nan))


def test_scoring_does_not_modify_inputs(rng):
    """voxel_r2_score leaves its arrays unchanged."""
    X, mask, images = image_problem(rng)
    predicted = images + 1.0
    copies = images.copy(), predicted.copy(), mask.copy()
    voxel_r2_score(images, predicted, mask=mask)
    for original, copy in zip((images, predicted, mask), copies, strict=True):
        np.testing.assert_array_equal(original, copy)
