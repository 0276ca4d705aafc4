"""VoxelMasker: images (arrays or NIfTI) to voxel columns and maps back to images."""

import numbers
import os

import numpy as np
from scipy import ndimage
from scipy.sparse import issparse
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._compat import (
    HasMethods,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
    validate_params,
)
from ._validation import reject_complex

__all__ = ["VoxelMasker", "apply_mask", "unmask"]

_NIFTI_EXTRA = "pip install skvoxel[nifti]"

# nilearn's compute_epi_mask cut-offs: the threshold is searched between these
# quantiles of the sorted mean image.
_EPI_LOWER_CUTOFF = 0.2
_EPI_UPPER_CUTOFF = 0.85

# Largest block of images read at once (raw values plus a float64 copy).
_MAX_BLOCK_BYTES = 64 * 2**20

# Arrays, paths, or NIfTI images (anything with nibabel's get_fdata).
_MASK_CONSTRAINT = ["array-like", str, os.PathLike, HasMethods(["get_fdata"])]


class VoxelMasker(TransformerMixin, BaseEstimator):
    """Mask images into voxel columns, and put voxel maps back into images.

    ``transform`` turns images into the data matrix ``Y`` of shape
    ``(n_samples, n_voxels)``: one row per sample (volume), one column per
    voxel of the mask. ``inverse_transform`` turns rows of voxel values (data,
    predictions, or a map such as ``MassUnivariateOLS.coef_[i]``) back into
    images, with zeros outside the mask.

    Images can be:

    - an array of shape ``(n_samples, *spatial_shape)``, samples first as
      everywhere in scikit-learn; a 2-D array is a flat grid of ``n_features``
      voxels;
    - a 4-D NIfTI image (nibabel), time last as in NIfTI: ``(x, y, z, t)``;
    - a 3-D NIfTI image (one sample);
    - a list of 3-D (or 4-D) NIfTI images, concatenated along samples;
    - a path to a NIfTI file, or a list of paths.

    Whatever the input kind, voxels are ordered as numpy's boolean indexing
    orders them (C order over the spatial axes): column ``k`` of
    ``transform(X)`` is the ``k``-th ``True`` voxel of ``mask_.ravel()``. This
    is also the order of nilearn's ``NiftiMasker``.

    Parameters
    ----------
    mask : array-like of bool, NIfTI image, str or path-like, default=None
        The voxels to keep: a boolean array of the spatial shape (0/1 values
        are accepted as booleans; other values are an error), a NIfTI image,
        or a path to one. ``None`` computes the mask in ``fit`` with
        ``mask_strategy``.
    mask_strategy : {"nonzero", "variance", "epi"}, default="nonzero"
        How ``fit`` computes the mask when ``mask`` is None. Every strategy
        keeps only voxels that are finite in every sample.

        - ``"nonzero"``: voxels non-zero in at least one sample.
        - ``"variance"``: voxels whose values are not all equal (non-zero
          variance across samples); needs at least 2 samples.
        - ``"epi"``: a threshold on the mean image, then its largest connected
          component, as EPI brain masks are usually made. The threshold is
          nilearn's ``compute_epi_mask`` rule: sort the mean image's values
          (non-finite voxels count as 0), look between the 20th and the 85th
          percentile for the widest gap between consecutive values, and
          threshold at the middle of that gap (voxels ``>=`` it are kept).
          The largest face-connected component is found with
          ``scipy.ndimage.label``. nilearn's morphological opening is not
          applied (``compute_epi_mask(..., opening=False)`` gives the same
          mask).

    Attributes
    ----------
    mask_ : ndarray of bool, of shape spatial_shape
        The mask: the given one, or the one computed in ``fit``.
    n_voxels_ : int
        Number of voxels in the mask, the number of columns of
        ``transform``'s output.
    affine_ : ndarray of shape (4, 4) or None
        When fitted on NIfTI images: the affine of their grid (the mask
        image's when the mask is an image; the two must match), carried by
        the images ``inverse_transform`` returns. None when fitted on arrays,
        and then ``inverse_transform`` returns arrays.
    n_features_in_ : int
        Number of voxels of the grid, ``mask_.size``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of a DataFrame ``X`` (a flat grid) seen in ``fit``.

    See Also
    --------
    apply_mask : The same masking as a function.
    unmask : ``inverse_transform`` as a function.
    skvoxel.voxel_r2_scorer : Scores image-shaped targets (with this masker
        in a ``TransformedTargetRegressor``) over the mask's voxels.

    Notes
    -----
    **Dtypes.** Array input follows skvoxel's rule: float32 stays float32,
    anything else becomes float64. NIfTI data follow the dtype stored in the
    file: float32 stays float32; 8- and 16-bit integers become float32, as
    float32 holds every such integer exactly; scaled 8- and 16-bit integers
    (``scl_slope``, ``scl_inter``) become float32 when float32 resolves the
    stored steps, i.e. when its spacing at the largest magnitude the scaling
    can produce is at most 1/16 of ``|scl_slope|``, else float64. Scaling is
    computed in float64 and rounded once to float32. Everything else (float64,
    wider integers, float32 with scaling) becomes float64.

    **Memory.** NIfTI data are read through nibabel's array proxies, a block
    of volumes at a time: a block's raw (unscaled) values are masked first,
    and only the in-mask values are scaled (in float64) and rounded into the
    output. Blocks are sized from scikit-learn's ``working_memory``, at most
    64 MiB, so the memory used besides the output stays within about that
    budget whatever the size of the image: a 4-D int16 image is never
    converted whole to floating point.

    **Non-finite values.** NaN and inf outside the mask are ignored; inside
    it, ``transform`` raises a ``ValueError`` that counts such voxels.

    Examples
    --------
    Two samples of a 2 x 3 grid; the mask keeps three voxels, in C order:

    >>> import numpy as np
    >>> from skvoxel import VoxelMasker
    >>> images = np.arange(12.0).reshape(2, 2, 3)
    >>> mask = np.array([[True, False, True], [False, True, False]])
    >>> masker = VoxelMasker(mask).fit(images)
    >>> Y = masker.transform(images)
    >>> Y
    array([[ 0.,  2.,  4.],
           [ 6.,  8., 10.]])
    >>> masker.inverse_transform(Y[0])
    array([[0., 0., 2.],
           [0., 4., 0.]])
    >>> masker.get_feature_names_out()
    array(['x0', 'x2', 'x4'], dtype=object)

    Without a mask, ``fit`` computes one; by default the voxels non-zero in
    some sample (after this, voxel (0, 0) is zero in both samples):

    >>> images[1, 0, 0] = 0.0
    >>> VoxelMasker().fit(images).n_voxels_
    5
    """

    _parameter_constraints = {
        "mask": [*_MASK_CONSTRAINT, None],
        "mask_strategy": [StrOptions({"nonzero", "variance", "epi"})],
    }

    def __init__(self, mask=None, *, mask_strategy="nonzero"):
        self.mask = mask
        self.mask_strategy = mask_strategy

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Take the mask, or compute it from the images.

        With an explicit ``mask``, only the images' shape (and affine, for
        NIfTI) is read, not their data.

        Parameters
        ----------
        X : array-like, NIfTI image, path, or list of images or paths
            The images: an array of shape ``(n_samples, *spatial_shape)``, a
            4-D (time last) or 3-D NIfTI image, or a list of them.
        y : None
            Ignored.

        Returns
        -------
        self : VoxelMasker
            The fitted masker.
        """
        images = _read_images(X, estimator=self)
        self._check_n_features(X, images, reset=True)
        mask_affine = None
        if self.mask is None:
            mask = _compute_mask(images, self.mask_strategy)
        else:
            mask, mask_affine = _load_mask(self.mask)
            _check_mask_shape(mask.shape, images.spatial_shape)
            _check_affine(mask_affine, images.affine)
        self.mask_ = mask
        self.n_voxels_ = int(np.count_nonzero(mask))
        if images.kind == "nifti":
            self.affine_ = mask_affine if mask_affine is not None else images.affine
        else:
            self.affine_ = None
        self._mask_affine = mask_affine
        return self

    def transform(self, X):
        """Mask images into the data matrix, one column per voxel.

        Parameters
        ----------
        X : array-like, NIfTI image, path, or list of images or paths
            Images of the spatial shape of ``mask_`` (see ``fit``).

        Returns
        -------
        Y : ndarray of shape (n_samples, n_voxels_)
            The in-mask values, in the order of ``mask_``'s ``True`` voxels
            (C order). A 3-D NIfTI image gives one row.
        """
        check_is_fitted(self)
        images = _read_images(X, estimator=self)
        self._check_n_features(X, images, reset=False)
        _check_mask_shape(self.mask_.shape, images.spatial_shape)
        reference = self.affine_ if self.affine_ is not None else self._mask_affine
        _check_affine(reference, images.affine)
        return _extract(images, self.mask_)

    def inverse_transform(self, X):
        """Put rows of voxel values (data or maps) back into images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels_) or (n_voxels_,)
            Voxel values, e.g. ``transform``'s output, predictions, or a map
            such as ``coef_[i]`` or ``ContrastResult.stat``. Non-finite
            values are allowed (a map may hold inf).

        Returns
        -------
        images : ndarray or NIfTI image
            Zeros outside the mask. Arrays of shape
            ``(n_samples, *spatial_shape)``, or ``spatial_shape`` for 1-D
            ``X``. When fitted on NIfTI: a ``nibabel.Nifti1Image`` with
            affine ``affine_``, 4-D (time last) for 2-D ``X``, 3-D for 1-D
            ``X``. float32 values stay float32, others become float64.
        """
        check_is_fitted(self)
        reject_complex(X, "X", "VoxelMasker")
        X = _check_voxel_rows(X, self.n_voxels_, owner="VoxelMasker")
        if self.affine_ is not None:
            return _to_nifti(X, self.mask_, self.affine_)
        return _unmask_array(X, self.mask_)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: the in-mask voxels' input names.

        Voxel ``i`` of the grid (its index in ``mask_.ravel()``, C order) is
        named ``x{i}``, or ``feature_names_in_[i]`` when fitted on a
        DataFrame.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Names of the ``n_features_in_`` grid voxels; ``None`` uses
            ``feature_names_in_`` or ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects of shape (n_voxels_,)
            The names of the in-mask voxels, in column order.
        """
        check_is_fitted(self)
        flat = np.flatnonzero(self.mask_)
        if input_features is None and not hasattr(self, "feature_names_in_"):
            # Only the kept voxels' names: a grid can hold millions of voxels.
            return np.asarray([f"x{i}" for i in flat], dtype=object)
        names = _check_feature_names_in(self, input_features)
        return names[flat]

    def _check_n_features(self, X, images, *, reset):
        """Record or check the grid size (and names) on the flat view of X."""
        if images.array is not None and images.array.ndim == 2:
            flat = X  # a DataFrame keeps its column names
        else:
            # A stand-in of the flat view's shape that allocates nothing.
            flat = np.broadcast_to(np.float64(0), (images.n_samples, images.size))
        try:
            validate_data(self, flat, reset=reset, skip_check_array=True)
        except ValueError as exc:
            if reset or images.spatial_shape == self.mask_.shape:
                raise
            msg = f"{exc} {_shape_mismatch(self.mask_.shape, images.spatial_shape)}"
            raise ValueError(msg) from exc

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN and inf are accepted outside the mask (a computed mask leaves
        # them out); inside it transform raises.
        tags.input_tags.allow_nan = True
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


@validate_params(
    {"X": _MASK_CONSTRAINT, "mask": _MASK_CONSTRAINT},
    prefer_skip_nested_validation=True,
)
def apply_mask(X, mask):
    """Mask images into the data matrix ``(n_samples, n_voxels)``.

    The function form of ``VoxelMasker(mask).fit_transform(X)``; see
    :class:`VoxelMasker` for the kinds of images, the voxel order and dtypes.

    Parameters
    ----------
    X : array-like, NIfTI image, path, or list of images or paths
        The images: an array of shape ``(n_samples, *spatial_shape)``, a 4-D
        (time last) or 3-D NIfTI image, or a list of them.
    mask : array-like of bool, NIfTI image, str or path-like
        The voxels to keep, of the images' spatial shape.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_voxels)
        The in-mask values, one column per voxel in C order.

    Examples
    --------
    >>> import numpy as np
    >>> from skvoxel.masking import apply_mask
    >>> images = np.arange(8.0).reshape(2, 4)
    >>> apply_mask(images, [True, False, False, True])
    array([[0., 3.],
           [4., 7.]])
    """
    return VoxelMasker(mask).fit_transform(X)


@validate_params(
    {"X": ["array-like"], "mask": _MASK_CONSTRAINT},
    prefer_skip_nested_validation=True,
)
def unmask(X, mask):
    """Put rows of voxel values back into images, zeros outside the mask.

    The function form of :meth:`VoxelMasker.inverse_transform`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_voxels) or (n_voxels,)
        Voxel values in the mask's C order, ``n_voxels`` the number of
        ``True`` voxels of ``mask``.
    mask : array-like of bool, NIfTI image, str or path-like
        The mask the values come from.

    Returns
    -------
    images : ndarray or NIfTI image
        An array of shape ``(n_samples, *mask.shape)`` (``mask.shape`` for
        1-D ``X``); a ``nibabel.Nifti1Image`` with the mask's affine, time
        last, when ``mask`` is a NIfTI image or path. float32 values stay
        float32, others become float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skvoxel.masking import unmask
    >>> unmask(np.array([1.0, 2.0]), [True, False, False, True])
    array([1., 0., 0., 2.])
    """
    reject_complex(X, "X", "unmask")
    mask, affine = _load_mask(mask)
    X = _check_voxel_rows(X, int(np.count_nonzero(mask)), owner="mask")
    if affine is not None:
        return _to_nifti(X, mask, affine)
    return _unmask_array(X, mask)


# --- Reading images -----------------------------------------------------------


def _import_nibabel():
    """nibabel, or an ImportError that names the extra to install."""
    try:
        import nibabel
    except ImportError as exc:
        msg = f"NIfTI images need nibabel, an optional dependency: {_NIFTI_EXTRA}"
        raise ImportError(msg) from exc
    return nibabel


def _is_path(obj):
    return isinstance(obj, str | os.PathLike)


def _is_image(obj):
    """Whether obj looks like a nibabel spatial image (without importing it)."""
    return hasattr(obj, "dataobj") and hasattr(obj, "affine") and hasattr(obj, "shape")


def _block_size(n_voxels_grid):
    """Samples per block: raw values and a float64 copy within the budget.

    The budget is scikit-learn's ``working_memory``, at most
    ``_MAX_BLOCK_BYTES``: reading more volumes at once gains little.
    """
    budget = min(get_config()["working_memory"] * 2**20, _MAX_BLOCK_BYTES)
    return max(1, int(budget // max(16 * n_voxels_grid, 1)))


class _Images:
    """Validated images: their kind, shape, affine, working dtype and blocks."""

    def __init__(self, kind, parts, *, array=None):
        self.kind = kind
        self.parts = parts
        self.array = array
        self.spatial_shape = parts[0].spatial_shape
        self.size = int(np.prod(self.spatial_shape, dtype=np.int64))
        self.n_samples = sum(part.n_samples for part in parts)
        self.affine = parts[0].affine
        self.dtype = np.result_type(*(part.dtype for part in parts))

    def blocks(self):
        """Yield ``(start, block, slope, inter)``, blocks ``(b, *spatial)``.

        A block holds raw (unscaled) values; the data are
        ``block * slope + inter``. Blocks are views or fresh reads: never
        write into them.
        """
        n_block = _block_size(self.size)
        start = 0
        for part in self.parts:
            for block in part.blocks(n_block):
                yield start, block, part.slope, part.inter
                start += block.shape[0]


class _ArrayPart:
    """Array images ``(n_samples, *spatial_shape)``."""

    slope, inter, affine = 1.0, 0.0, None

    def __init__(self, array):
        self.array = array
        self.n_samples = array.shape[0]
        self.spatial_shape = tuple(array.shape[1:])
        self.dtype = np.dtype(np.float32 if array.dtype == np.float32 else np.float64)

    def blocks(self, n_block):
        for start in range(0, self.n_samples, n_block):
            yield self.array[start : start + n_block]


class _NiftiPart:
    """One 3-D or 4-D NIfTI image, read through its array proxy."""

    def __init__(self, img, name):
        shape = tuple(img.shape)
        if len(shape) not in (3, 4):
            msg = (
                f"{name} is a {len(shape)}-D image of shape {shape}, but NIfTI "
                "images must be 3-D (one sample) or 4-D (x, y, z, t), time last."
            )
            raise ValueError(msg)
        self.spatial_shape = shape[:3]
        self.n_samples = 1 if len(shape) == 3 else shape[3]
        self._ndim = len(shape)
        affine = img.affine
        self.affine = None if affine is None else np.array(affine, dtype=np.float64)
        self._raw, self.slope, self.inter, storage = _unscaled(img)
        self.dtype = _nifti_dtype(storage, self.slope, self.inter, name)

    def blocks(self, n_block):
        if self._ndim == 3:
            yield np.asarray(self._raw[...])[np.newaxis]
            return
        for start in range(0, self.n_samples, n_block):
            block = np.asarray(self._raw[..., start : start + n_block])
            yield np.moveaxis(block, -1, 0)


def _unscaled(img):
    """The image's data without scaling: ``(raw, slope, inter, storage_dtype)``.

    For nibabel's ``ArrayProxy`` (NIfTI, Analyze, MGH files), a second proxy
    over the same file reads the stored values, so that the masker can mask
    them before scaling. In-memory arrays are used as they are. Other
    proxies are read (and scaled) by nibabel; their values are then taken as
    float64 unless stored as float32.
    """
    dataobj = img.dataobj
    if isinstance(dataobj, np.ndarray):
        return dataobj, 1.0, 0.0, dataobj.dtype
    nib = _import_nibabel()
    proxy_type = nib.arrayproxy.ArrayProxy
    if isinstance(dataobj, proxy_type) and np.ndim(dataobj.slope) == 0:
        slope, inter = float(dataobj.slope), float(dataobj.inter)
        if (slope, inter) == (1.0, 0.0):
            return dataobj, 1.0, 0.0, dataobj.dtype
        spec = (dataobj.shape, dataobj.dtype, dataobj.offset, 1.0, 0.0)
        raw = proxy_type(dataobj.file_like, spec, order=dataobj.order)
        return raw, slope, inter, dataobj.dtype
    storage = np.dtype(getattr(dataobj, "dtype", img.get_data_dtype()))
    kept = storage if storage == np.float32 else np.dtype(np.float64)
    return dataobj, 1.0, 0.0, kept


def _nifti_dtype(storage, slope, inter, name):
    """Working dtype of NIfTI data (see VoxelMasker's Notes)."""
    storage = np.dtype(storage)
    if storage.kind not in "biuf":
        msg = (
            f"{name} holds {storage} data; VoxelMasker reads real-valued "
            "(integer or floating point) NIfTI data only."
        )
        raise TypeError(msg)
    scaled = (slope, inter) != (1.0, 0.0)
    if storage == np.float32 and not scaled:
        return np.dtype(np.float32)
    if storage.kind in "biu" and storage.itemsize <= 2:
        if not scaled:
            return np.dtype(np.float32)
        if storage.kind == "b":
            low, high = 0, 1
        else:
            low, high = int(np.iinfo(storage).min), int(np.iinfo(storage).max)
        largest = max(abs(slope * low + inter), abs(slope * high + inter))
        if largest < np.finfo(np.float32).max:
            spacing = float(np.spacing(np.float32(largest)))
            if spacing <= abs(slope) / 16:
                return np.dtype(np.float32)
    return np.dtype(np.float64)


def _read_images(X, *, estimator):
    """Validate the images X (any accepted kind) into an ``_Images``."""
    if _is_path(X) or _is_image(X):
        X = [X]
        single = True
    else:
        single = False
    if isinstance(X, list | tuple) and any(_is_path(x) or _is_image(x) for x in X):
        parts = []
        for i, item in enumerate(X):
            name = "X" if single else f"X[{i}]"
            if _is_path(item):
                item = _import_nibabel().load(item)
            elif not _is_image(item):
                msg = (
                    f"{name} is a {type(item).__name__}, but X mixes it with NIfTI "
                    "images or paths. Pass a list of images or paths only, or "
                    "one array of shape (n_samples, *spatial_shape)."
                )
                raise TypeError(msg)
            parts.append(_NiftiPart(item, name))
        for i, part in enumerate(parts[1:], start=1):
            if part.spatial_shape != parts[0].spatial_shape:
                msg = (
                    f"X[{i}] has spatial shape {part.spatial_shape}, but X[0] has "
                    f"{parts[0].spatial_shape}: all images must share one grid."
                )
                raise ValueError(msg)
            if not _same_affine(part.affine, parts[0].affine):
                msg = (
                    f"X[{i}] has another affine than X[0]: all images must share "
                    f"one grid.\nX[0] affine:\n{parts[0].affine}\nX[{i}] affine:\n"
                    f"{part.affine}"
                )
                raise ValueError(msg)
        return _Images("nifti", parts)
    # (scipy's dok sparse format is a dict: check_array rejects sparse input.)
    if X is None or (
        isinstance(X, dict | set | bytes | numbers.Number) and not issparse(X)
    ):
        msg = (
            "X must be images: an array of shape (n_samples, *spatial_shape), a "
            "NIfTI image, a path to one, or a list of images or paths; got "
            f"{type(X).__name__}."
        )
        raise TypeError(msg)
    reject_complex(X, "X", type(estimator).__name__)
    array = check_array(
        X,
        dtype="numeric",
        allow_nd=True,
        ensure_all_finite=False,
        estimator=estimator,
        input_name="X",
    )
    return _Images("array", [_ArrayPart(array)], array=array)


# --- Masks --------------------------------------------------------------------


def _load_mask(mask):
    """The mask as ``(boolean ndarray, affine or None)``; never aliases input."""
    affine = None
    if _is_path(mask):
        mask = _import_nibabel().load(mask)
    if _is_image(mask):
        if mask.affine is not None:
            affine = np.array(mask.affine, dtype=np.float64)
        values = np.asarray(mask.dataobj)
    else:
        values = np.asarray(mask)
    if values.dtype == bool:
        mask = values.copy()
    elif values.dtype.kind in "iuf":
        valid = (values == 0) | (values == 1)
        if not np.all(valid):
            bad = np.unique(values[~valid])
            shown = ", ".join(str(v) for v in bad[:3]) + (
                ", ..." if bad.size > 3 else ""
            )
            msg = (
                f"mask must be boolean (True/False, or 0/1), but it holds "
                f"{bad.size} other value(s): {shown}. Binarize it first, e.g. "
                "mask > 0.5."
            )
            raise ValueError(msg)
        mask = values == 1
    else:
        msg = (
            f"mask must be boolean (True/False, or 0/1), but it has dtype "
            f"{values.dtype}."
        )
        raise TypeError(msg)
    if not mask.any():
        msg = (
            f"mask (shape {mask.shape}) selects no voxel: it is all False. A "
            "mask needs at least one True voxel."
        )
        raise ValueError(msg)
    return mask, affine


def _shape_mismatch(mask_shape, spatial_shape):
    return (
        f"mask has shape {mask_shape}, but images have spatial shape {spatial_shape}."
    )


def _check_mask_shape(mask_shape, spatial_shape):
    if tuple(mask_shape) != tuple(spatial_shape):
        msg = (
            f"{_shape_mismatch(tuple(mask_shape), tuple(spatial_shape))} "
            "They must be equal: images are (n_samples, *spatial_shape) arrays or "
            "NIfTI images on the mask's grid."
        )
        raise ValueError(msg)


def _same_affine(a, b):
    # Affines are stored as float32 in NIfTI headers: the same grid written
    # twice may differ by float32 rounding, hence numpy's default tolerance.
    return a is None or b is None or np.allclose(a, b)


def _check_affine(mask_affine, images_affine):
    if not _same_affine(mask_affine, images_affine):
        msg = (
            "mask image and images have different affines: the mask is on "
            "another grid. Resample the mask to the images first (e.g. "
            f"nilearn.image.resample_to_img).\nmask affine:\n{mask_affine}\n"
            f"images affine:\n{images_affine}"
        )
        raise ValueError(msg)


def _compute_mask(images, strategy):
    """Compute the mask of ``strategy`` in one pass over the images' blocks."""
    if strategy == "variance" and images.n_samples < 2:
        msg = (
            f"mask_strategy='variance' needs at least 2 samples, got "
            f"{images.n_samples} sample: one sample has no variance."
        )
        raise ValueError(msg)
    shape = images.spatial_shape
    finite = np.ones(shape, dtype=bool)
    nonzero = np.zeros(shape, dtype=bool)
    low = np.full(shape, np.inf)
    high = np.full(shape, -np.inf)
    total = np.zeros(shape)
    for _, block, slope, inter in images.blocks():
        if (slope, inter) != (1.0, 0.0):
            block = np.multiply(block, slope, dtype=np.float64) + inter
        block_finite = np.isfinite(block)
        finite &= block_finite.all(axis=0)
        if strategy == "nonzero":
            nonzero |= (block != 0).any(axis=0)
        elif strategy == "variance":
            low = np.fmin(low, block.min(axis=0))
            high = np.fmax(high, block.max(axis=0))
        else:
            total += np.where(block_finite, block, 0).sum(axis=0, dtype=np.float64)
    if strategy == "nonzero":
        mask = nonzero & finite
        why = "every voxel is zero in all samples or non-finite in some"
    elif strategy == "variance":
        mask = (high > low) & finite
        why = "no voxel varies across samples (among those finite in all)"
    else:
        mean = np.where(finite, total / images.n_samples, 0.0)
        mask = _largest_component((mean >= _epi_threshold(mean)) & finite)
        why = "no finite voxel reaches the threshold on the mean image"
    if not mask.any():
        msg = (
            f"mask_strategy={strategy!r} selected no voxel: {why} "
            f"({np.count_nonzero(finite)} of {finite.size} voxels are finite in "
            "every sample). Pass an explicit mask, or check the images."
        )
        raise ValueError(msg)
    return mask


def _epi_threshold(mean):
    """nilearn's compute_epi_mask threshold: middle of the widest gap."""
    values = np.sort(mean, axis=None)
    lower = int(np.floor(_EPI_LOWER_CUTOFF * values.size))
    upper = min(int(np.floor(_EPI_UPPER_CUTOFF * values.size)), values.size - 1)
    if upper <= lower:  # a single voxel: no gap to search, keep it
        return values[lower]
    gap = np.argmax(values[lower + 1 : upper + 1] - values[lower:upper])
    return 0.5 * (values[lower + gap] + values[lower + gap + 1])


def _largest_component(mask):
    """The largest face-connected component (the first in C order on ties)."""
    labels, n_labels = ndimage.label(mask)
    if n_labels <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)


# --- Masking and unmasking ----------------------------------------------------


def _extract(images, mask):
    """The in-mask values of every sample, ``(n_samples, n_voxels)``."""
    n_voxels = int(np.count_nonzero(mask))
    out = np.empty((images.n_samples, n_voxels), dtype=images.dtype)
    bad = np.zeros(n_voxels, dtype=bool)
    for start, block, slope, inter in images.blocks():
        values = block[:, mask]  # raw values first: only in-mask ones are scaled
        if (slope, inter) != (1.0, 0.0):
            values = np.multiply(values, slope, dtype=np.float64) + inter
        rows = out[start : start + block.shape[0]]
        rows[...] = values
        bad |= ~np.isfinite(rows).all(axis=0)
    if bad.any():
        n_bad = int(np.count_nonzero(bad))
        first = tuple(int(i) for i in np.argwhere(mask)[np.flatnonzero(bad)[0]])
        msg = (
            f"X has NaN or inf inside the mask in {n_bad} of {n_voxels} voxels "
            f"(first: voxel {first}); in-mask values must be finite. Leave those "
            "voxels out of the mask (mask_strategy computes masks without them) "
            "or fill them first."
        )
        raise ValueError(msg)
    return out


def _check_voxel_rows(X, n_voxels, *, owner):
    """Validate ``(n_samples, n_voxels)`` or ``(n_voxels,)`` voxel values."""
    X = check_array(
        X,
        dtype=[np.float64, np.float32],
        ensure_2d=False,
        allow_nd=True,
        ensure_all_finite=False,
        input_name="X",
    )
    if X.ndim > 2:
        msg = (
            f"X has {X.ndim} dimensions (shape {X.shape}), but voxel values are "
            f"(n_samples, {n_voxels}) or ({n_voxels},): one column per mask voxel."
        )
        raise ValueError(msg)
    if X.shape[-1] != n_voxels:
        what = "columns" if X.ndim == 2 else "values"
        fitted = (
            "VoxelMasker was fitted with a mask of"
            if owner == "VoxelMasker"
            else "the mask has"
        )
        msg = (
            f"X has {X.shape[-1]} {what}, but {fitted} {n_voxels} voxels: expected "
            f"shape (n_samples, {n_voxels}) or ({n_voxels},)."
        )
        raise ValueError(msg)
    return X


def _unmask_array(X, mask):
    """Arrays ``(n_samples, *mask.shape)`` (or ``mask.shape``), zeros outside."""
    out = np.zeros(X.shape[:-1] + mask.shape, dtype=X.dtype)
    out[..., mask] = X
    return out


def _to_nifti(X, mask, affine):
    """A Nifti1Image (time last for 2-D X) carrying ``affine``."""
    nib = _import_nibabel()
    if X.ndim == 1:
        data = np.zeros(mask.shape, dtype=X.dtype)
        data[mask] = X
    else:
        data = np.zeros(mask.shape + X.shape[:1], dtype=X.dtype)
        data[mask] = X.T
    return nib.Nifti1Image(data, affine)
