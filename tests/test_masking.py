"""Tests for skvoxel.masking: VoxelMasker, apply_mask, unmask."""

import pickle
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import config_context
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skvoxel import VoxelMasker
from skvoxel.masking import apply_mask, unmask

from .conftest import make_images, make_mask

nib = pytest.importorskip("nibabel")


def nifti(images, affine=None):
    """A 4-D Nifti1Image (time last) from samples-first images."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine
    return nib.Nifti1Image(np.moveaxis(images, 0, -1), affine)


def time_first(img):
    """The data of a 4-D image, samples first, as nibabel scales them (float64)."""
    return np.moveaxis(np.asarray(img.dataobj), -1, 0)


def scaled_int16_file(path, raw, slope, inter, affine=None):
    """Save int16 ``raw`` (x, y, z, t) with the given scl_slope/scl_inter; load it."""
    img = nib.Nifti1Image(raw.astype(np.int16), np.eye(4) if affine is None else affine)
    img.header.set_slope_inter(slope, inter)
    img.to_filename(path)
    loaded = nib.load(path)
    assert (loaded.dataobj.slope, loaded.dataobj.inter) == (slope, inter)
    return loaded


# --- Real data: nibabel's functional.nii against nilearn ---------------------


@pytest.fixture
def functional_mask(functional_path):
    """nilearn's EPI mask of functional.nii (no opening), as a NIfTI image."""
    masking = pytest.importorskip("nilearn.masking")
    return masking.compute_epi_mask(nib.load(functional_path), opening=False)


def test_transform_equals_nilearn_niftimasker(functional_path, functional_mask):
    """Same explicit mask: VoxelMasker's columns are NiftiMasker's, same order."""
    maskers = pytest.importorskip("nilearn.maskers")
    img = nib.load(functional_path)
    assert img.shape == (17, 21, 3, 20) and img.get_data_dtype() == np.int16
    expected = maskers.NiftiMasker(functional_mask, standardize=None).fit_transform(img)
    assert expected.shape == (20, 852) and expected.dtype == np.float64

    Y = VoxelMasker(functional_mask).fit_transform(img)
    # Scaled int16 is read as float32 (see the dtype rule): the values are the
    # float64 ones nilearn reads, rounded once.
    assert Y.dtype == np.float32
    np.testing.assert_array_equal(Y, expected.astype(np.float32))

    # The same mask as a boolean array, and the run as a float64 array
    # (samples first): exactly nilearn's float64 values.
    mask = functional_mask.get_fdata() == 1
    Y_array = VoxelMasker(mask).fit_transform(time_first(img))
    assert Y_array.dtype == np.float64
    np.testing.assert_array_equal(Y_array, expected)
    np.testing.assert_array_equal(VoxelMasker(mask).fit_transform(img), Y)


def test_nifti_round_trip_restores_voxels_and_affine(
    functional_path, functional_mask, tmp_path
):
    """inverse_transform gives the in-mask voxels and the affine back exactly."""
    img = nib.load(functional_path)
    masker = VoxelMasker(functional_mask).fit(img)
    Y = masker.transform(img)
    back = masker.inverse_transform(Y)
    assert isinstance(back, nib.Nifti1Image)
    assert back.shape == img.shape
    np.testing.assert_array_equal(back.affine, img.affine)
    np.testing.assert_array_equal(masker.affine_, functional_mask.affine)
    mask = masker.mask_
    data = np.asarray(back.dataobj)
    assert data.dtype == np.float32
    original = np.asarray(img.dataobj).astype(np.float32)
    np.testing.assert_array_equal(data[mask], original[mask])
    assert not np.any(data[~mask])

    path = tmp_path / "round_trip.nii.gz"
    back.to_filename(path)
    reloaded = nib.load(path)
    np.testing.assert_array_equal(reloaded.affine, img.affine)
    np.testing.assert_array_equal(np.asarray(reloaded.dataobj), data)
    np.testing.assert_array_equal(masker.transform(reloaded), Y)

    # A map (one value per voxel) becomes a 3-D image.
    beta = Y.mean(axis=0)
    beta_img = masker.inverse_transform(beta)
    assert beta_img.shape == img.shape[:3]
    np.testing.assert_array_equal(beta_img.affine, img.affine)
    np.testing.assert_array_equal(np.asarray(beta_img.dataobj)[mask], beta)


def test_inverse_transform_equals_nilearn(functional_path, functional_mask):
    """nilearn's NiftiMasker.inverse_transform gives the same image data."""
    maskers = pytest.importorskip("nilearn.maskers")
    img = nib.load(functional_path)
    Y = VoxelMasker(functional_mask).fit_transform(img)
    ours = VoxelMasker(functional_mask).fit(img).inverse_transform(Y)
    theirs = maskers.NiftiMasker(functional_mask, standardize=None).fit()
    theirs = theirs.inverse_transform(Y)
    np.testing.assert_array_equal(np.asarray(ours.dataobj), theirs.get_fdata())


def test_epi_strategy_equals_nilearn_compute_epi_mask(functional_path, functional_mask):
    """mask_strategy="epi" is nilearn's compute_epi_mask without opening."""
    masker = VoxelMasker(mask_strategy="epi").fit(functional_path)
    np.testing.assert_array_equal(masker.mask_, functional_mask.get_fdata() == 1)
    assert masker.n_voxels_ == 852
    np.testing.assert_array_equal(masker.affine_, nib.load(functional_path).affine)


def test_nifti_input_kinds_agree(functional_path, tmp_path):
    """A 4-D image, its path, lists of 3-D images or paths give the same rows."""
    img = nib.load(functional_path)
    mask = VoxelMasker(mask_strategy="epi").fit(img).mask_
    expected = VoxelMasker(mask).fit_transform(img)
    assert expected.dtype == np.float32
    # The run as 3-D files that keep its int16 values and scaling.
    raw = img.dataobj.get_unscaled()
    paths = []
    for i in range(img.shape[-1]):
        paths.append(tmp_path / f"vol{i:02d}.nii")
        volume = nib.Nifti1Image(raw[..., i], img.affine)
        volume.header.set_slope_inter(img.dataobj.slope, img.dataobj.inter)
        volume.to_filename(paths[-1])
    volumes = [nib.load(path) for path in paths]
    for X in (functional_path, str(functional_path), volumes, paths, tuple(paths)):
        np.testing.assert_array_equal(VoxelMasker(mask).fit_transform(X), expected)
    # A 3-D image is one sample.
    np.testing.assert_array_equal(
        VoxelMasker(mask).fit_transform(volumes[3]), expected[3:4]
    )
    # In-memory images hold what nibabel read: float64, kept as float64.
    reference = time_first(img)[:, mask]
    for X in (nib.four_to_three(img), [img.slicer[..., :8], img.slicer[..., 8:]]):
        Y = VoxelMasker(mask).fit_transform(X)
        assert Y.dtype == np.float64
        np.testing.assert_array_equal(Y, reference)
    # Arrays and images mix between fit and transform on the same grid.
    as_array = time_first(img).astype(np.float32)
    np.testing.assert_array_equal(
        VoxelMasker(mask).fit(img).transform(as_array), expected
    )
    np.testing.assert_array_equal(
        VoxelMasker(mask).fit(as_array).transform(img), expected
    )


def test_nifti_transform_reads_blocks_within_working_memory(tmp_path, rng):
    """A 4-D int16 file is masked block by block: no whole float copy is made."""
    shape = (30, 30, 20, 60)
    raw = rng.integers(-3000, 3000, size=shape)
    img = scaled_int16_file(tmp_path / "run.nii", raw, 0.25, 100.0)
    mask = np.zeros(shape[:3], dtype=bool)
    mask[5:25, 5:20, 2:14] = True
    masker = VoxelMasker(mask).fit(img)
    working_memory = 0.25  # MiB
    with config_context(working_memory=working_memory):
        tracemalloc.start()
        Y = masker.transform(img)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert Y.dtype == np.float32
    expected = (raw[mask].T * 0.25 + 100.0).astype(np.float32)
    np.testing.assert_array_equal(Y, expected)
    # The output, plus blocks bounded by working_memory (raw values and their
    # in-mask float64 copy): far below one float32 copy of the whole image.
    float32_copy = raw.size * 4
    assert peak <= Y.nbytes + 2 * working_memory * 2**20
    assert peak < float32_copy / 2


def test_fit_with_explicit_mask_reads_no_data(tmp_path, rng):
    """With a mask given, fit reads the header only (the data may be unreadable)."""
    mask = make_mask((4, 5, 3), rng=rng)
    path = tmp_path / "truncated.nii"
    nifti(make_images(6, (4, 5, 3), rng=rng)).to_filename(path)
    with open(path, "r+b") as f:
        f.truncate(352 + 8)  # the NIfTI-1 header, and one voxel of data
    masker = VoxelMasker(mask).fit(path)
    assert masker.n_voxels_ == mask.sum()
    with pytest.raises((ValueError, OSError)):  # nibabel's error on reading
        masker.transform(path)


@pytest.mark.parametrize("strategy", ["nonzero", "variance", "epi"])
def test_blocks_do_not_change_results(strategy, functional_path, rng):
    """Masks and data are the same whatever the block size (working_memory)."""
    img = nib.load(functional_path)
    images = make_images(15, (6, 7, 5), rng=rng, mask=make_mask((6, 7, 5), rng=rng))
    for X in (img, images):
        masker = VoxelMasker(mask_strategy=strategy).fit(X)
        Y = masker.transform(X)
        with config_context(working_memory=0.001):  # one volume per block
            small = VoxelMasker(mask_strategy=strategy).fit(X)
            np.testing.assert_array_equal(small.mask_, masker.mask_)
            np.testing.assert_array_equal(small.transform(X), Y)


@pytest.mark.parametrize(
    ("storage", "slope", "inter", "expected"),
    [
        (np.int16, 1.0, 0.0, np.float32),
        (np.uint8, 1.0, 0.0, np.float32),
        (np.uint16, 1.0, 0.0, np.float32),
        (np.int16, 0.25, 100.0, np.float32),  # float32 resolves the 0.25 steps
        (np.int16, 0.5, 1e6, np.float64),  # spacing 0.0625 near 1e6 > 0.5 / 16
        (np.int32, 1.0, 0.0, np.float64),
        (np.float32, 1.0, 0.0, np.float32),
        (np.float64, 1.0, 0.0, np.float64),
    ],
)
def test_nifti_dtype_rule(storage, slope, inter, expected, tmp_path):
    """NIfTI data become float32 where float32 holds them, else float64."""
    raw = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).astype(storage)
    img = nib.Nifti1Image(raw, np.eye(4))
    if (slope, inter) != (1.0, 0.0):
        img = scaled_int16_file(tmp_path / "scaled.nii", raw, slope, inter)
    else:
        img.to_filename(tmp_path / "plain.nii")
        img = nib.load(tmp_path / "plain.nii")
    assert img.get_data_dtype() == (np.int16 if slope != 1.0 else storage)
    mask = np.ones((2, 3, 4), dtype=bool)
    Y = VoxelMasker(mask).fit_transform(img)
    assert Y.dtype == expected
    exact = raw.reshape(-1, 5).T.astype(np.float64) * slope + inter
    np.testing.assert_array_equal(Y, exact.astype(expected))


# --- Arrays: voxel order, strategies, dtypes ---------------------------------


def test_voxel_order_is_boolean_indexing_order(rng):
    """Columns follow numpy's boolean indexing (C order over spatial axes)."""
    mask = make_mask((4, 5, 3), rng=rng)
    images = rng.normal(size=(6, 4, 5, 3))
    Y = VoxelMasker(mask).fit_transform(images)
    np.testing.assert_array_equal(Y, images[:, mask])
    np.testing.assert_array_equal(Y, images.reshape(6, -1)[:, mask.ravel()])
    # The same values as a NIfTI image (time last) come out in the same order.
    np.testing.assert_array_equal(VoxelMasker(mask).fit_transform(nifti(images)), Y)
    # A 2-D array is a flat grid.
    flat = images.reshape(6, -1)
    np.testing.assert_array_equal(
        VoxelMasker(mask.ravel()).fit_transform(flat), flat[:, mask.ravel()]
    )


def test_nonzero_strategy(rng):
    """ "nonzero": non-zero in some sample and finite in all."""
    images = rng.normal(size=(5, 3, 4))
    images[:, 0, 0] = 0.0
    images[:4, 0, 1] = 0.0  # non-zero in one sample: kept
    images[2, 1, 1] = np.nan
    images[0, 2, 3] = np.inf
    masker = VoxelMasker().fit(images)
    expected = np.ones((3, 4), dtype=bool)
    expected[0, 0] = expected[1, 1] = expected[2, 3] = False
    np.testing.assert_array_equal(masker.mask_, expected)
    assert masker.n_voxels_ == 9
    assert masker.n_features_in_ == 12
    # Non-finite values outside the mask are ignored by transform.
    np.testing.assert_array_equal(masker.transform(images), images[:, expected])


def test_variance_strategy(rng):
    """ "variance": values not all equal across samples, finite in all."""
    images = rng.normal(size=(5, 3, 4))
    images[:, 0, 0] = 7.0
    images[:, 2, 2] = 0.0
    images[1, 1, 1] = -np.inf
    mask = VoxelMasker(mask_strategy="variance").fit(images).mask_
    expected = np.ones((3, 4), dtype=bool)
    expected[0, 0] = expected[2, 2] = expected[1, 1] = False
    np.testing.assert_array_equal(mask, expected)


def test_epi_strategy_threshold_and_largest_component():
    """ "epi": threshold in the widest gap of the mean image, largest component."""
    mean = np.full((8, 8), 1.0)
    mean[1:5, 1:5] = 10.0  # the brain: 16 voxels
    mean[6:8, 6:8] = 10.0  # a bright blob not connected to it: 4 voxels
    mean[0, 7] = 3.0
    images = np.stack([mean - 0.5, mean + 0.5])
    masker = VoxelMasker(mask_strategy="epi").fit(images)
    # Sorted means: 43 ones, one 3, twenty 10s. Between the 20th (index 12)
    # and 85th (index 54) percentiles, the widest gap is 3 -> 10: threshold
    # 6.5. Voxels >= 6.5 are both blobs; the largest component is the brain.
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:5, 1:5] = True
    np.testing.assert_array_equal(masker.mask_, expected)


def test_epi_strategy_leaves_out_non_finite_voxels():
    """ "epi" keeps only voxels finite in every sample."""
    images = np.ones((3, 6, 6))
    images[:, 1:5, 1:5] = 10.0
    images[1, 2, 2] = np.nan
    mask = VoxelMasker(mask_strategy="epi").fit(images).mask_
    assert mask.sum() == 15 and not mask[2, 2]


def test_complex_values_are_refused_by_name(rng):
    """Complex images or voxel values, in every entry point: a ValueError
    naming X (scikit-learn's own prints the whole array)."""
    images = rng.normal(size=(4, 3, 3, 2))
    mask = np.ones((3, 3, 2), dtype=bool)
    masker = VoxelMasker().fit(images)
    match = r"^Complex data not supported: X has dtype complex128, but {} works"
    calls = {
        "VoxelMasker": [
            lambda: VoxelMasker().fit(images + 1j),
            lambda: masker.transform(images + 1j),
            lambda: masker.inverse_transform(masker.transform(images) + 1j),
            lambda: apply_mask(images + 1j, mask),
        ],
        "unmask": [lambda: unmask(np.ones(18) + 1j, mask)],
    }
    for owner, entries in calls.items():
        for call in entries:
            with pytest.raises(ValueError, match=match.format(owner)):
                call()


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int16, np.float64),
        (np.int64, np.float64),
        (bool, np.float64),
    ],
)
def test_array_dtypes(dtype, expected, rng):
    """float32 arrays stay float32, other dtypes become float64, both ways."""
    images = rng.integers(0, 3, size=(4, 3, 5)).astype(dtype)
    masker = VoxelMasker(np.ones((3, 5), dtype=bool)).fit(images)
    Y = masker.transform(images)
    assert Y.dtype == expected
    np.testing.assert_array_equal(Y, images.reshape(4, -1).astype(expected))
    back = masker.inverse_transform(Y)
    assert back.dtype == expected
    np.testing.assert_array_equal(back, images.astype(expected))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    spatial_shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    n_samples=st.integers(1, 6),
    dtype=st.sampled_from([np.float32, np.float64]),
    as_nifti=st.booleans(),
)
def test_round_trip_restores_in_mask_voxels(
    seed, spatial_shape, n_samples, dtype, as_nifti
):
    """Property: inverse_transform(transform(X)) restores in-mask voxels, 0 outside."""
    rng = np.random.default_rng(seed)
    if as_nifti:
        spatial_shape = (spatial_shape + (1, 1, 1))[:3]
    mask = make_mask(spatial_shape, rng=rng)
    images = rng.normal(size=(n_samples, *spatial_shape)).astype(dtype)
    images[:, ~mask] = np.nan  # ignored outside the mask
    X = nifti(images) if as_nifti else images
    masker = VoxelMasker(mask).fit(X)
    Y = masker.transform(X)
    assert Y.shape == (n_samples, mask.sum()) and Y.dtype == dtype
    back = masker.inverse_transform(Y)
    if as_nifti:
        back = np.moveaxis(np.asarray(back.dataobj), -1, 0)
    assert back.shape == images.shape and back.dtype == dtype
    np.testing.assert_array_equal(back[:, mask], images[:, mask])
    assert not np.any(back[:, ~mask])
    np.testing.assert_array_equal(apply_mask(X, mask), Y)
    np.testing.assert_array_equal(unmask(Y, mask), back)


# --- Masks given as arrays, images, paths -------------------------------------


def test_mask_as_image_path_or_zero_one_values(tmp_path, rng):
    """A mask image, its path, and 0/1 numeric masks equal the boolean mask."""
    mask = make_mask((4, 5, 3), rng=rng)
    images = make_images(6, (4, 5, 3), rng=rng)
    expected = images[:, mask]
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    mask_img.to_filename(tmp_path / "mask.nii.gz")
    for given_mask in (
        mask_img,
        tmp_path / "mask.nii.gz",
        str(tmp_path / "mask.nii.gz"),
        mask.astype(np.int8),
        mask.astype(np.float32),
        mask.tolist(),
    ):
        np.testing.assert_array_equal(
            VoxelMasker(given_mask).fit_transform(images), expected
        )
    # A mask image gives the NIfTI images it masks its affine; arrays stay arrays.
    fitted = VoxelMasker(mask_img).fit(nifti(images))
    np.testing.assert_array_equal(fitted.affine_, mask_img.affine)
    assert VoxelMasker(mask_img).fit(images).affine_ is None
    assert isinstance(
        VoxelMasker(mask_img).fit(images).inverse_transform(expected), np.ndarray
    )


def test_unmask_with_mask_image_returns_image(rng):
    """unmask with a NIfTI mask returns an image carrying the mask's affine."""
    mask = make_mask((4, 5, 3), rng=rng)
    affine = np.array([[-3.0, 0, 0, 90], [0, 3, 0, -126], [0, 0, 3, -72], [0, 0, 0, 1]])
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), affine)
    values = rng.normal(size=(2, mask.sum()))
    img = unmask(values, mask_img)
    np.testing.assert_array_equal(img.affine, affine)
    data = np.asarray(img.dataobj)
    assert data.shape == (4, 5, 3, 2)
    np.testing.assert_array_equal(data[mask], values.T)
    assert unmask(values[0], mask_img).shape == (4, 5, 3)


def test_mask_is_copied_not_aliased(rng):
    """Changing the user's mask after fit does not change mask_."""
    mask = make_mask((4, 5), rng=rng)
    masker = VoxelMasker(mask).fit(make_images(3, (4, 5), rng=rng))
    mask[...] = False
    assert masker.mask_.any()


# --- Features names, set_output, fitted objects -------------------------------


def test_feature_names_out_are_flat_grid_indices(rng):
    """Output columns are named x{i}, i the voxel's C-order index in the grid."""
    mask = make_mask((4, 5, 3), rng=rng)
    masker = VoxelMasker(mask).fit(make_images(3, (4, 5, 3), rng=rng))
    names = masker.get_feature_names_out()
    assert names.dtype == object
    np.testing.assert_array_equal(names, [f"x{i}" for i in np.flatnonzero(mask)])
    custom = [f"v{i}" for i in range(60)]
    np.testing.assert_array_equal(
        masker.get_feature_names_out(custom), np.asarray(custom)[mask.ravel()]
    )
    with pytest.raises(NotFittedError):
        VoxelMasker(mask).get_feature_names_out()


def test_set_output_pandas_names_columns_by_voxel(rng):
    """set_output(transform="pandas") gives a DataFrame with voxel names."""
    pd = pytest.importorskip("pandas")
    mask = make_mask((4, 5, 3), rng=rng)
    images = make_images(3, (4, 5, 3), rng=rng)
    masker = VoxelMasker(mask).set_output(transform="pandas")
    frame = masker.fit_transform(images)
    assert isinstance(frame, pd.DataFrame)
    np.testing.assert_array_equal(frame.columns, masker.get_feature_names_out())
    np.testing.assert_array_equal(frame.to_numpy(), images[:, mask])
    np.testing.assert_array_equal(
        masker.inverse_transform(frame)[:, mask], images[:, mask]
    )
    # A DataFrame (a flat grid) keeps its column names.
    columns = [f"voxel_{i}" for i in range(60)]
    flat = pd.DataFrame(images.reshape(3, -1), columns=columns)
    flat_masker = VoxelMasker(mask.ravel()).fit(flat)
    np.testing.assert_array_equal(
        flat_masker.get_feature_names_out(), np.asarray(columns)[mask.ravel()]
    )


@pytest.mark.parametrize("kind", ["array", "mask_image", "nifti"])
def test_clone_and_pickle_fitted_masker(kind, rng):
    """A pickled fitted masker transforms and inverts as the original does."""
    mask = make_mask((4, 5, 3), rng=rng)
    images = make_images(6, (4, 5, 3), rng=rng)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    X = nifti(images) if kind == "nifti" else images
    masker = VoxelMasker(mask if kind == "array" else mask_img).fit(X)
    restored = pickle.loads(pickle.dumps(masker))
    Y = masker.transform(X)
    np.testing.assert_array_equal(restored.transform(X), Y)
    back, restored_back = masker.inverse_transform(Y), restored.inverse_transform(Y)
    if kind == "nifti":
        np.testing.assert_array_equal(restored_back.affine, back.affine)
        back, restored_back = (
            np.asarray(back.dataobj),
            np.asarray(restored_back.dataobj),
        )
    np.testing.assert_array_equal(restored_back, back)
    cloned = clone(masker)
    assert not hasattr(cloned, "mask_")
    assert cloned.get_params()["mask_strategy"] == "nonzero"
    np.testing.assert_array_equal(cloned.fit_transform(X), Y)


def test_pickle_check_data_leave_no_finite_voxel():
    """The reason for the expected check_estimators_pickle failure holds."""
    # The data of scikit-learn's check_estimators_pickle, NaN included.
    X, _ = make_blobs(
        n_samples=30,
        centers=[[0, 0, 0], [1, 1, 1]],
        random_state=0,
        n_features=2,
        cluster_std=0.1,
    )
    nan_at = np.random.RandomState(42).choice(X.size, 10, replace=False)
    X.reshape(-1)[nan_at] = np.nan
    assert X.shape == (30, 3)
    assert np.isnan(X).sum(axis=0).tolist() == [2, 5, 3]
    for strategy in ("nonzero", "variance", "epi"):
        with pytest.raises(ValueError, match="selected no voxel.*0 of 3 voxels"):
            VoxelMasker(mask_strategy=strategy).fit(X)


# --- Bad input ----------------------------------------------------------------


def test_mask_shape_mismatch(rng):
    """A mask of another shape than the images is a ValueError naming both."""
    images = make_images(3, (4, 5, 7), rng=rng)
    mask = np.ones((4, 5, 6), dtype=bool)
    msg = r"mask has shape \(4, 5, 6\), but images have spatial shape \(4, 5, 7\)\."
    with pytest.raises(ValueError, match=msg):
        VoxelMasker(mask).fit(images)
    with pytest.raises(ValueError, match=msg):
        apply_mask(images, mask)
    with pytest.raises(ValueError, match=msg):
        VoxelMasker(mask).fit(nifti(images))
    # After fit: the feature count (scikit-learn's message), then the shape.
    masker = VoxelMasker(mask).fit(make_images(3, (4, 5, 6), rng=rng))
    with pytest.raises(
        ValueError,
        match=r"X has 140 features, but VoxelMasker is expecting 120 features as "
        r"input\. " + msg,
    ):
        masker.transform(images)
    same_size = make_images(3, (5, 4, 6), rng=rng)
    with pytest.raises(ValueError, match=r"spatial shape \(5, 4, 6\)\."):
        masker.transform(same_size)
    # A flat 2-D view is another shape, not silently reinterpreted.
    with pytest.raises(ValueError, match=r"spatial shape \(120,\)\."):
        masker.transform(make_images(3, (120,), rng=rng))


def test_empty_mask(rng):
    """An all-False mask, given or computed, is a ValueError."""
    images = make_images(3, (4, 5), rng=rng)
    with pytest.raises(ValueError, match=r"mask \(shape \(4, 5\)\) selects no voxel"):
        VoxelMasker(np.zeros((4, 5), dtype=bool)).fit(images)
    with pytest.raises(ValueError, match="selects no voxel"):
        VoxelMasker(nib.Nifti1Image(np.zeros((4, 5, 2), np.uint8), np.eye(4))).fit(
            make_images(3, (4, 5, 2), rng=rng)
        )
    with pytest.raises(
        ValueError, match=r"mask_strategy='nonzero' selected no voxel.*20 of 20"
    ):
        VoxelMasker().fit(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="mask_strategy='variance' selected no voxel"):
        VoxelMasker(mask_strategy="variance").fit(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match=r"needs at least 2 samples, got 1 sample"):
        VoxelMasker(mask_strategy="variance").fit(images[:1])


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ([0, 1, 2], "1 other value.*: 2"),
        ([0.5, 1.0, 0.0], "0.5"),
        ([np.nan, 1, 0], "nan"),
    ],
)
def test_non_boolean_mask_values(values, shown, rng):
    """A mask with values other than 0/1 is a ValueError: binarize it first."""
    mask = np.resize(np.asarray(values), (4, 5))
    with pytest.raises(ValueError, match=f"mask must be boolean.*{shown}.*Binarize"):
        VoxelMasker(mask).fit(make_images(3, (4, 5), rng=rng))
    with pytest.raises(ValueError, match="mask must be boolean"):
        VoxelMasker(nib.Nifti1Image(mask[..., None] * 1.0, np.eye(4))).fit(
            make_images(3, (4, 5, 1), rng=rng)
        )
    with pytest.raises(TypeError, match="mask must be boolean.*dtype <U1"):
        VoxelMasker(np.full((4, 5), "a")).fit(make_images(3, (4, 5), rng=rng))


def test_affine_mismatch(rng):
    """A mask image on another grid than the images is a ValueError."""
    mask = make_mask((4, 5, 3), rng=rng)
    images = make_images(3, (4, 5, 3), rng=rng)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(
        ValueError, match="mask image and images have different affines"
    ):
        VoxelMasker(mask_img).fit(nifti(images))
    # Fitted on NIfTI, transform checks the images' affine.
    masker = VoxelMasker(mask).fit(nifti(images))
    with pytest.raises(ValueError, match="different affines"):
        masker.transform(nifti(images, affine=np.eye(4)))
    # Float32 rounding of a header's affine is the same grid.
    close = np.diag([2.0, 2.0, 2.0, 1.0]) * (1 + 1e-7)
    np.testing.assert_array_equal(
        masker.transform(nifti(images, affine=close)), images[:, mask]
    )
    # Images of a list must share one grid.
    volumes = [nib.Nifti1Image(v, np.eye(4)) for v in images]
    volumes[2] = nib.Nifti1Image(images[2], np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"X\[2\] has another affine than X\[0\]"):
        VoxelMasker(mask).fit(volumes)
    volumes[2] = nib.Nifti1Image(images[2, :, :, :2], np.eye(4))
    with pytest.raises(ValueError, match=r"X\[2\] has spatial shape \(4, 5, 2\)"):
        VoxelMasker(mask).fit(volumes)


def test_inverse_transform_wrong_width(rng):
    """inverse_transform rejects data whose width is not n_voxels_."""
    mask = np.zeros((4, 5), dtype=bool)
    mask[:2, :3] = True
    masker = VoxelMasker(mask).fit(make_images(3, (4, 5), rng=rng))
    with pytest.raises(
        ValueError,
        match=r"X has 7 columns, but VoxelMasker was fitted with a mask of 6 "
        r"voxels: expected shape \(n_samples, 6\) or \(6,\)\.",
    ):
        masker.inverse_transform(np.ones((3, 7)))
    with pytest.raises(ValueError, match=r"X has 5 values, but VoxelMasker"):
        masker.inverse_transform(np.ones(5))
    with pytest.raises(ValueError, match=r"X has 3 dimensions"):
        masker.inverse_transform(np.ones((3, 2, 3)))
    with pytest.raises(ValueError, match=r"X has 4 values, but the mask has 6"):
        unmask(np.ones(4), mask)
    # Non-finite map values (e.g. infinite t) go back to image space.
    values = np.array([np.inf, -np.inf, np.nan, 1.0, 2.0, 3.0])
    back = masker.inverse_transform(values)
    np.testing.assert_array_equal(back[mask], values)


def test_non_finite_inside_mask_counted(rng):
    """NaN or inf inside the mask is a ValueError counting those voxels."""
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3] = True  # 10 voxels
    images = make_images(4, (4, 5), rng=rng)
    images[:, 0] = np.nan  # outside: ignored
    images[0, 1, 1] = np.nan
    images[2, 1, 1] = np.inf  # the same voxel again
    images[3, 2, 4] = -np.inf
    images[1, 2, 0] = np.nan
    masker = VoxelMasker(mask).fit(images)
    msg = (
        r"X has NaN or inf inside the mask in 3 of 10 voxels \(first: voxel \(1, 1\)\)"
    )
    with pytest.raises(ValueError, match=msg):
        masker.transform(images)
    with pytest.raises(ValueError, match="in 3 of 10 voxels"):
        VoxelMasker(mask[..., None]).fit(nifti(images[..., None])).transform(
            nifti(images[..., None])
        )
    with pytest.raises(ValueError, match="in 1 of 10 voxels"):
        masker.transform(images[3:])


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (None, TypeError, "X must be images.*got NoneType"),
        ({"a": 1}, TypeError, "got dict"),
        (3.0, TypeError, "got float"),
        (np.ones(5), ValueError, "Expected 2D array, got 1D array"),
        (np.ones((3, 4)) + 1j, ValueError, "Complex data not supported"),
        (np.array([["a", "b"]]), ValueError, "dtype='numeric' is not compatible"),
    ],
)
def test_wrong_kinds_of_input(X, error, match):
    """Inputs that are not images are rejected with the kinds accepted."""
    with pytest.raises(error, match=match):
        VoxelMasker().fit(X)


def test_wrong_kinds_of_nifti_input(rng):
    """Images of the wrong dimension or dtype, or mixed lists, are rejected."""
    images = make_images(3, (4, 5, 3), rng=rng)
    with pytest.raises(ValueError, match=r"X is a 2-D image of shape \(4, 5\)"):
        VoxelMasker().fit(nib.Nifti1Image(images[0, :, :, 0], np.eye(4)))
    with pytest.raises(ValueError, match=r"X is a 5-D image"):
        VoxelMasker().fit(nib.Nifti1Image(images[0][..., None, None], np.eye(4)))
    with pytest.raises(TypeError, match=r"complex128 data"):
        VoxelMasker().fit(nib.Nifti1Image(images.astype(complex), np.eye(4)))
    volume = nib.Nifti1Image(images[0], np.eye(4))
    with pytest.raises(TypeError, match=r"X\[1\] is a ndarray, but X mixes it"):
        VoxelMasker().fit([volume, images[1]])
    with pytest.raises(InvalidParameterError, match="mask_strategy"):
        VoxelMasker(mask_strategy="otsu").fit(images)
    with pytest.raises(InvalidParameterError, match="'mask' parameter"):
        VoxelMasker(mask=3).fit(images)
    with pytest.raises(NotFittedError):
        VoxelMasker().transform(images)


def test_without_nibabel_nifti_paths_name_the_extra(monkeypatch, tmp_path, rng):
    """Without nibabel, NIfTI paths raise an ImportError naming skvoxel[nifti]."""
    images = make_images(3, (4, 5, 3), rng=rng)
    path = tmp_path / "images.nii"
    nifti(images).to_filename(path)
    fitted = VoxelMasker().fit(nifti(images))
    monkeypatch.setitem(sys.modules, "nibabel", None)
    extra = r"pip install skvoxel\[nifti\]"
    with pytest.raises(ImportError, match=extra):
        VoxelMasker().fit(path)
    with pytest.raises(ImportError, match=extra):
        VoxelMasker(str(path)).fit(images)
    with pytest.raises(ImportError, match=extra):
        fitted.inverse_transform(fitted.transform(images))
    # Arrays need no nibabel.
    np.testing.assert_array_equal(
        VoxelMasker().fit_transform(images), images.reshape(3, -1)
    )


def test_inputs_are_not_modified(rng, tmp_path):
    """Images, masks, in-memory NIfTI data and voxel values stay unchanged."""
    mask = make_mask((4, 5, 3), rng=rng)
    images = make_images(6, (4, 5, 3), rng=rng, mask=mask, outside=np.nan)
    img = nifti(images)
    X_arrays = (images, img.dataobj, mask)
    copies = [np.array(a, copy=True) for a in X_arrays]
    for strategy in ("nonzero", "variance", "epi"):
        VoxelMasker(mask_strategy=strategy).fit(images)
        VoxelMasker(mask_strategy=strategy).fit(img)
    Y = VoxelMasker(mask).fit_transform(images)
    Y_copy = Y.copy()
    VoxelMasker(mask).fit(img).inverse_transform(Y)
    VoxelMasker(mask).fit(images).inverse_transform(Y)
    unmask(Y, mask)
    apply_mask(img, mask)
    with config_context(working_memory=0.001):
        VoxelMasker(mask).fit_transform(img)
    for original, copy in zip(X_arrays, copies, strict=True):
        np.testing.assert_array_equal(np.asarray(original), copy)
    np.testing.assert_array_equal(Y, Y_copy)
    # Outputs are fresh arrays, not views of the input.
    assert not np.shares_memory(VoxelMasker(mask).fit_transform(images), images)
