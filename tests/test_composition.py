"""The compositions of API.md: pipelines, target transformers, CV, search, decoding."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    TimeSeriesSplit,
    cross_val_predict,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from skvoxel import MassUnivariateOLS, VoxelMasker, voxel_r2_scorer

from .conftest import make_mask

pd = pytest.importorskip("pandas")

N_RUNS, RUN_LENGTH = 4, 8
SPATIAL_SHAPE = (4, 5, 3)
SPLITTERS = {
    "KFold": KFold(n_splits=4),
    "KFold-shuffled": KFold(n_splits=4, shuffle=True, random_state=0),
    "GroupKFold": GroupKFold(n_splits=4),
    "TimeSeriesSplit": TimeSeriesSplit(n_splits=3),
}
PARTITIONS = ["KFold", "KFold-shuffled", "GroupKFold"]


def groups(study, splitter):
    """The runs, for a splitter that uses groups (others warn if given them)."""
    return study["runs"] if isinstance(splitter, GroupKFold) else None


DEGREE = "regressor__columntransformer__drift__degree"


@pytest.fixture
def study(rng):
    """4 runs of 8 volumes: a block design with drift, images zero outside a mask."""
    n = N_RUNS * RUN_LENGTH
    runs = np.repeat(np.arange(N_RUNS), RUN_LENGTH)
    task = np.tile(np.repeat([0.0, 1.0], RUN_LENGTH // 2), N_RUNS)
    time = np.linspace(-1, 1, n)
    design = pd.DataFrame({"time": time, "task": task})
    mask = make_mask(SPATIAL_SHAPE, rng=rng)
    n_voxels = int(mask.sum())
    signal = (
        100.0
        + np.outer(task, rng.normal(2.0, 1.0, size=n_voxels))
        + np.outer(time, rng.normal(0.0, 1.0, size=n_voxels))
        + np.outer(time**2, rng.normal(0.0, 1.5, size=n_voxels))
    )
    images = np.zeros((n, *SPATIAL_SHAPE))
    images[:, mask] = signal + rng.normal(size=(n, n_voxels))
    return {"design": design, "images": images, "mask": mask, "runs": runs}


def design_pipeline(degree=1):
    """Design transformers (a polynomial drift with its constant, the task), OLS."""
    columns = ColumnTransformer(
        [
            ("drift", PolynomialFeatures(degree=degree), ["time"]),
            ("task", "passthrough", ["task"]),
        ]
    )
    return make_pipeline(columns, MassUnivariateOLS())


def image_regressor(mask, degree=1, **kwargs):
    """The API.md target transformer: OLS on voxel columns, images in and out."""
    return TransformedTargetRegressor(
        regressor=design_pipeline(degree), transformer=VoxelMasker(mask), **kwargs
    )


def hand_design(design, degree):
    """The design matrix written out: 1, t, ..., t**degree, then the task."""
    time = design["time"].to_numpy()
    columns = [time**k for k in range(degree + 1)]
    return np.column_stack([*columns, design["task"].to_numpy()])


def hand_fold(design, Y, train, test, degree):
    """Fit on the train fold by lstsq; return test predictions and mean R^2."""
    D = hand_design(design, degree)
    coef = np.linalg.lstsq(D[train], Y[train], rcond=None)[0]
    predicted = D[test] @ coef
    residual = ((Y[test] - predicted) ** 2).sum(axis=0)
    total = ((Y[test] - Y[test].mean(axis=0)) ** 2).sum(axis=0)
    # r2_score's convention for a voxel constant in the test fold: 1 if
    # predicted exactly, else 0.
    constant = total == 0
    r2 = np.where(constant, (residual == 0) * 1.0, 0.0)
    r2[~constant] = 1.0 - residual[~constant] / total[~constant]
    return predicted, np.mean(r2)


def hand_scores(study, splitter, degree=1):
    """Mean in-mask R^2 of every fold, computed without scikit-learn."""
    Y = study["images"][:, study["mask"]]
    splits = splitter.split(study["design"], Y, groups=groups(study, splitter))
    return np.array(
        [hand_fold(study["design"], Y, tr, te, degree)[1] for tr, te in splits]
    )


def test_design_pipeline_fits_the_written_out_design(study):
    """make_pipeline(design transformers, MassUnivariateOLS()) fits that design."""
    Y = study["images"][:, study["mask"]]
    for degree in (0, 1, 3):
        pipeline = design_pipeline(degree).fit(study["design"], Y)
        D = hand_design(study["design"], degree)
        expected = np.linalg.lstsq(D, Y, rcond=None)[0]
        model = pipeline[-1]
        assert model.coef_.shape == (degree + 2, Y.shape[1])
        np.testing.assert_allclose(model.coef_, expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(
            pipeline.predict(study["design"]), D @ expected, rtol=1e-12
        )


@pytest.mark.parametrize("name", SPLITTERS)
def test_design_pipeline_cross_validation(study, name):
    """On (X, Y), default scoring and voxel_r2_scorer equal the hand computation."""
    Y = study["images"][:, study["mask"]]
    expected = hand_scores(study, SPLITTERS[name])
    for scoring in (None, voxel_r2_scorer):
        scores = cross_val_score(
            design_pipeline(),
            study["design"],
            Y,
            groups=groups(study, SPLITTERS[name]),
            cv=SPLITTERS[name],
            scoring=scoring,
        )
        assert np.all(np.isfinite(scores))
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)


def test_target_transformer_predicts_images(study):
    """TransformedTargetRegressor on image arrays: predictions are images."""
    design, images, mask = study["design"], study["images"], study["mask"]
    model = image_regressor(mask).fit(design, images)
    predicted = model.predict(design)
    assert predicted.shape == images.shape
    assert not np.any(predicted[:, ~mask])
    Y = images[:, mask]
    np.testing.assert_array_equal(
        predicted[:, mask], design_pipeline().fit(design, Y).predict(design)
    )
    np.testing.assert_array_equal(model.transformer_.mask_, mask)
    # One voxel or 1-D targets go through too.
    one = np.zeros(SPATIAL_SHAPE, dtype=bool)
    one.flat[np.flatnonzero(mask)[0]] = True
    single = image_regressor(one, check_inverse=False).fit(design, images)
    single = single.predict(design)
    assert single.shape == images.shape


def test_target_transformer_check_inverse(study):
    """check_inverse: silent when images are zero outside the mask, else a warning.

    The masker drops voxels outside the mask, so it is an exact inverse only
    where those are zero; check_inverse=False is the documented form otherwise.
    """
    design, images, mask = study["design"], study["images"], study["mask"]
    image_regressor(mask).fit(design, images)  # filterwarnings=error: no warning
    unmasked = images.copy()
    unmasked[:, ~mask] = 7.0
    with pytest.warns(UserWarning, match="not strictly inverse of each other"):
        image_regressor(mask).fit(design, unmasked)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = image_regressor(mask, check_inverse=False).fit(design, unmasked)
    np.testing.assert_array_equal(
        model.predict(design), image_regressor(mask).fit(design, images).predict(design)
    )


@pytest.mark.parametrize("name", SPLITTERS)
def test_cross_val_score_on_images(study, name):
    """cross_val_score with voxel_r2_scorer: finite, equal to the hand computation."""
    images, mask = study["images"].copy(), study["mask"].copy()
    scores = cross_val_score(
        image_regressor(study["mask"]),
        study["design"],
        study["images"],
        groups=groups(study, SPLITTERS[name]),
        cv=SPLITTERS[name],
        scoring=voxel_r2_scorer,
    )
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(
        scores, hand_scores(study, SPLITTERS[name]), rtol=0, atol=1e-12
    )
    # Nothing passed in was modified.
    np.testing.assert_array_equal(study["images"], images)
    np.testing.assert_array_equal(study["mask"], mask)


@pytest.mark.parametrize("name", SPLITTERS)
def test_cross_validate_on_images(study, name):
    """cross_validate: test and train scores equal the hand computation."""
    splitter = SPLITTERS[name]
    result = cross_validate(
        image_regressor(study["mask"]),
        study["design"],
        study["images"],
        groups=groups(study, splitter),
        cv=splitter,
        scoring={"r2": voxel_r2_scorer},
        return_train_score=True,
        return_estimator=True,
    )
    np.testing.assert_allclose(
        result["test_r2"], hand_scores(study, splitter), rtol=0, atol=1e-12
    )
    Y = study["images"][:, study["mask"]]
    splits = splitter.split(study["design"], Y, groups=groups(study, splitter))
    train = [hand_fold(study["design"], Y, tr, tr, 1)[1] for tr, _ in splits]
    np.testing.assert_allclose(result["train_r2"], train, rtol=0, atol=1e-12)
    for estimator in result["estimator"]:
        np.testing.assert_array_equal(estimator.transformer_.mask_, study["mask"])


@pytest.mark.parametrize("name", PARTITIONS)
def test_cross_val_predict_on_images(study, name):
    """cross_val_predict returns images: the hand fold predictions, 0 outside."""
    splitter = SPLITTERS[name]
    design, images, mask = study["design"], study["images"], study["mask"]
    predicted = cross_val_predict(
        image_regressor(mask),
        design,
        images,
        groups=groups(study, splitter),
        cv=splitter,
    )
    assert predicted.shape == images.shape
    assert not np.any(predicted[:, ~mask])
    Y = images[:, mask]
    expected = np.empty_like(Y)
    for train, test in splitter.split(design, Y, groups=groups(study, splitter)):
        expected[test] = hand_fold(design, Y, train, test, 1)[0]
    np.testing.assert_allclose(predicted[:, mask], expected, rtol=1e-10)


def test_cross_val_predict_needs_a_partition(study):
    """TimeSeriesSplit does not predict every sample: scikit-learn refuses it."""
    with pytest.raises(ValueError, match="only works for partitions"):
        cross_val_predict(
            image_regressor(study["mask"]),
            study["design"],
            study["images"],
            cv=SPLITTERS["TimeSeriesSplit"],
        )


@pytest.mark.parametrize("name", SPLITTERS)
def test_grid_search_over_drift_degree(study, name):
    """GridSearchCV picks the drift degree by the hand-computed CV scores."""
    splitter = SPLITTERS[name]
    degrees = [0, 1, 2, 3]
    search = GridSearchCV(
        image_regressor(study["mask"]),
        {DEGREE: degrees},
        scoring=voxel_r2_scorer,
        cv=splitter,
    ).fit(study["design"], study["images"], groups=groups(study, splitter))
    expected = np.array([hand_scores(study, splitter, d) for d in degrees])
    for fold, fold_scores in enumerate(expected.T):
        np.testing.assert_allclose(
            search.cv_results_[f"split{fold}_test_score"], fold_scores, atol=1e-12
        )
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], expected.mean(axis=1), atol=1e-12
    )
    assert search.best_params_ == {DEGREE: degrees[np.argmax(expected.mean(axis=1))]}
    assert search.predict(study["design"]).shape == study["images"].shape


def test_grid_search_on_design_pipeline(study):
    """GridSearchCV over the design pipeline on (X, Y) with default scoring."""
    Y = study["images"][:, study["mask"]]
    splitter = SPLITTERS["GroupKFold"]
    search = GridSearchCV(
        design_pipeline(), {"columntransformer__drift__degree": [0, 2]}, cv=splitter
    ).fit(study["design"], Y, groups=groups(study, splitter))
    expected = [hand_scores(study, splitter, d).mean() for d in (0, 2)]
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], expected, atol=1e-12
    )


def test_computed_mask_is_refitted_in_each_fold(study):
    """With mask=None each fold masks its own training images, and is so scored."""
    design, images = study["design"], study["images"].copy()
    # A voxel non-zero in the first run only: in the mask of the folds that
    # train on that run, and then constant (zero) in their test run.
    voxel = tuple(np.argwhere(~study["mask"])[0])
    images[(slice(None), *voxel)] = 0.0
    images[(slice(0, 8), *voxel)] = 1.0 + np.arange(8.0)
    splitter = SPLITTERS["GroupKFold"]
    model = TransformedTargetRegressor(
        regressor=design_pipeline(), transformer=VoxelMasker(), check_inverse=False
    )
    scores = cross_val_score(
        model,
        design,
        images,
        groups=groups(study, splitter),
        cv=splitter,
        scoring=voxel_r2_scorer,
    )
    expected, sizes = [], set()
    for train, test in splitter.split(design, images, groups=groups(study, splitter)):
        fold_mask = (images[train] != 0).any(axis=0)
        sizes.add(int(fold_mask.sum()))
        Y = images[:, fold_mask]
        expected.append(hand_fold(design, Y, train, test, 1)[1])
    assert sizes == {study["mask"].sum(), study["mask"].sum() + 1}
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["KFold-shuffled", "GroupKFold"])
def test_decoding_pipeline(study, name, rng):
    """make_pipeline(VoxelMasker(mask), LogisticRegression()) decodes the task."""
    nib = pytest.importorskip("nibabel")
    images, labels, mask = decoding_problem(study, rng)
    decoder = make_pipeline(VoxelMasker(mask), LogisticRegression())
    splitter = SPLITTERS[name]
    scores = cross_val_score(
        decoder, images, labels, groups=groups(study, splitter), cv=splitter
    )
    expected = []
    for train, test in splitter.split(images, labels, groups=groups(study, splitter)):
        classifier = LogisticRegression().fit(images[train][:, mask], labels[train])
        expected.append(classifier.score(images[test][:, mask], labels[test]))
    np.testing.assert_array_equal(scores, expected)
    assert scores.mean() > 0.9  # the task is in the in-mask voxels
    # The same on a list of 3-D NIfTI images (scikit-learn indexes the list).
    volumes = [nib.Nifti1Image(volume, np.eye(4)) for volume in images]
    on_images = cross_val_score(
        decoder, volumes, labels, groups=groups(study, splitter), cv=splitter
    )
    np.testing.assert_array_equal(on_images, scores)


def decoding_problem(study, rng):
    """Images whose in-mask voxels carry the task (labels), noise everywhere."""
    mask = study["mask"]
    labels = study["design"]["task"].to_numpy().astype(int)
    images = rng.normal(size=study["images"].shape)
    pattern = rng.normal(size=int(mask.sum()))
    images[:, mask] += np.outer(labels - 0.5, pattern)
    return images, labels, mask


def test_clone_and_params(study):
    """clone, get_params and set_params reach the masker inside compositions."""
    model = image_regressor(study["mask"])
    params = model.get_params()
    assert params["transformer__mask"] is study["mask"]
    assert params["transformer__mask_strategy"] == "nonzero"
    assert params[DEGREE] == 1
    model.set_params(transformer__mask_strategy="epi", **{DEGREE: 2})
    cloned = clone(model)
    assert cloned.get_params()["transformer__mask_strategy"] == "epi"
    assert cloned.get_params()[DEGREE] == 2
    np.testing.assert_array_equal(
        cloned.get_params()["transformer__mask"], study["mask"]
    )
    decoder = clone(make_pipeline(VoxelMasker(study["mask"]), LogisticRegression()))
    assert decoder.get_params()["voxelmasker__mask"] is not study["mask"]


def test_pickle_fitted_compositions(study, rng):
    """Pickled fitted compositions predict exactly as the originals."""
    design, images, mask = study["design"], study["images"], study["mask"]
    Y = images[:, mask]
    decoding_images, labels, _ = decoding_problem(study, rng)
    fitted = [
        (image_regressor(mask).fit(design, images), design),
        (design_pipeline().fit(design, Y), design),
        (
            make_pipeline(VoxelMasker(mask), LogisticRegression()).fit(
                decoding_images, labels
            ),
            decoding_images,
        ),
    ]
    for estimator, X in fitted:
        restored = pickle.loads(pickle.dumps(estimator))
        np.testing.assert_array_equal(restored.predict(X), estimator.predict(X))
