"""Figures: the design matrix, and slices of 3-D maps (matplotlib, optional)."""

import math
from numbers import Integral, Real

import numpy as np
from scipy import ndimage

from .masking import _import_nibabel, _is_image, _is_path

__all__ = ["plot_design", "plot_map"]

_PLOT_EXTRA = "pip install skvoxel[plot]"

# Cold-hot colours: negative values from blue (small) to cyan (large),
# positive ones from red (small) to yellow (large), dark in between.
_NEGATIVE = ("#00ffff", "#0050ff")
_POSITIVE = ("#ff1a00", "#ffff00")
_CENTRE = "#505050"  # unthresholded maps: 0 in grey, apart from the black outside
_HIDDEN = "#8c8c8c"  # the colour bar's band of values below the threshold
_OUTLINE = "#00e060"


def _pyplot():
    """matplotlib.pyplot, or an ImportError that names the extra to install."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        msg = (
            f"skvoxel.plotting needs matplotlib, an optional dependency: {_PLOT_EXTRA}"
        )
        raise ImportError(msg) from exc
    return plt


def plot_design(design, *, regressor_names=None, title=None, figsize=None):
    """Show a design matrix as an image: one row per volume, one column per regressor.

    As in the notebook skvoxel grew from (``plt.imshow(X, cmap="gray")``),
    with the regressors named under their columns. Each column is divided
    by its largest absolute value for display, so that a constant of 1000
    and a drift of 0.1 are both visible: white is the column's largest
    value, black its negative, mid grey zero.

    Parameters
    ----------
    design : array-like or DataFrame of shape (n_samples, n_regressors)
        The design ``X``. A DataFrame's column names name the regressors.
    regressor_names : list of str or None, default=None
        Names of the columns; ``None`` takes a DataFrame's column names, or
        ``x0, x1, ...``.
    title : str or None, default=None
        Figure title; ``None`` gives the design's size.
    figsize : tuple of 2 float or None, default=None
        Figure size in inches; ``None`` sizes it from the number of
        regressors.

    Returns
    -------
    figure : matplotlib.figure.Figure
        The figure (made with ``matplotlib.pyplot``: close it when done).

    Examples
    --------
    >>> import numpy as np
    >>> from skvoxel.plotting import plot_design
    >>> X = np.ones((12, 2))
    >>> X[:, 0] = np.linspace(-1, 1, 12)
    >>> figure = plot_design(X, regressor_names=["trend", "constant"])
    >>> [label.get_text() for label in figure.axes[0].get_xticklabels()]
    ['trend', 'constant']
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    if regressor_names is None and hasattr(design, "columns"):
        regressor_names = [str(name) for name in design.columns]
    X = np.asarray(design, dtype=np.float64)
    if X.ndim != 2 or X.size == 0:
        msg = (
            "design must be a non-empty 2-D array (n_samples, n_regressors); got "
            f"shape {X.shape}."
        )
        raise ValueError(msg)
    if not np.all(np.isfinite(X)):
        msg = "design contains NaN or inf; a design's values must be finite."
        raise ValueError(msg)
    n_samples, n_regressors = X.shape
    if regressor_names is None:
        regressor_names = [f"x{i}" for i in range(n_regressors)]
    if len(regressor_names) != n_regressors:
        msg = (
            f"regressor_names has {len(regressor_names)} names, but design has "
            f"{n_regressors} columns."
        )
        raise ValueError(msg)
    scale = np.abs(X).max(axis=0)
    scaled = X / np.where(scale > 0, scale, 1.0)

    if figsize is None:
        figsize = (max(4.0, 2.0 + 0.5 * n_regressors), 5.5)
    figure = plt.figure(figsize=figsize, layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(
        scaled, cmap="gray", vmin=-1, vmax=1, aspect="auto", interpolation="nearest"
    )
    ax.set_xticks(range(n_regressors), regressor_names)
    if max(len(name) for name in regressor_names) > 4 or n_regressors > 6:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    for edge in np.arange(0.5, n_regressors - 1):  # separate the columns
        ax.axvline(edge, color="#808080", linewidth=0.6)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("regressor")
    ax.set_ylabel("volume (sample)")
    if title is None:
        title = f"Design matrix\n{n_samples} volumes x {n_regressors} regressors"
    ax.set_title(title)
    colorbar = figure.colorbar(image, ax=ax, shrink=0.6)
    colorbar.set_label("value / max |value| of its column")
    return figure


def plot_map(
    stat_map,
    *,
    threshold=None,
    display="ortho",
    cut=None,
    n_slices=12,
    background=None,
    outline=None,
    outline_label="outline",
    cmap=None,
    vmax=None,
    title=None,
    colorbar_label="value",
    figsize=None,
):
    """Show a 3-D map in orthogonal slices or a mosaic, thresholded, with a colour bar.

    Voxels where the map is 0 (outside the mask, as
    ``VoxelMasker.inverse_transform`` writes them), NaN, or of absolute value
    below ``threshold`` are not coloured: the ``background`` (or, without
    one, the map's non-zero voxels in grey) shows through. Infinite values
    (e.g. t at voxels with no residual variance) are drawn at the end of the
    colour scale.

    A map with negative values to show gets a diverging cold-hot colour
    scale, symmetric about 0 (blue to cyan below, red to yellow above); a
    map without gets red to yellow. The colour bar greys out the band of
    values the threshold hides.

    A NIfTI image is shown in its closest RAS orientation (by its affine:
    left of the subject on the left, anterior and superior up) with axes in
    mm; the mm scale is read off the affine's diagonal after that
    reorientation, exact for images without rotation. An array is shown as
    it is, with axes in voxels.

    Parameters
    ----------
    stat_map : array-like of shape (nx, ny, nz), NIfTI image, str or path-like
        The map: an array, a 3-D NIfTI image (or 4-D with one volume), or a
        path to one.
    threshold : float or None, default=None
        Voxels with ``|value| < threshold`` are not coloured; ``None``
        colours every non-zero voxel.
    display : {"ortho", "mosaic"}, default="ortho"
        ``"ortho"``: sagittal, coronal and axial slices through one voxel.
        ``"mosaic"``: ``n_slices`` axial slices (along the third axis).
    cut : tuple of 3 int or None, default=None
        For ``"ortho"``: the voxel ``(i, j, k)`` of ``stat_map`` the slices
        go through; ``None`` takes the centre of the largest cluster of
        coloured voxels (face-connected), or the voxel of it nearest to
        that centre when the centre is outside it.
    n_slices : int, default=12
        For ``"mosaic"``: the number of slices, evenly spaced over the slices
        where the map (or the background) is non-zero.
    background : array-like, NIfTI image, str, path-like or None, default=None
        An image on the map's grid shown in grey underneath, e.g. the mean
        image of the run.
    outline : array-like of bool, NIfTI image, str, path-like or None, default=None
        A region on the map's grid drawn as a green contour, e.g. a known
        activation.
    outline_label : str, default="outline"
        What the outline shows, written in the figure's legend.
    cmap : str, matplotlib colormap or None, default=None
        Colour map of the map; ``None`` chooses the cold-hot scale above.
    vmax : float or None, default=None
        Largest absolute value of the colour scale; ``None`` takes the
        largest finite absolute value shown.
    title : str or None, default=None
        Figure title.
    colorbar_label : str, default="value"
        What the map holds, e.g. ``"z"``, written along the colour bar.
    figsize : tuple of 2 float or None, default=None
        Figure size in inches; ``None`` chooses one for the display.

    Returns
    -------
    figure : matplotlib.figure.Figure
        The figure (made with ``matplotlib.pyplot``: close it when done).

    Examples
    --------
    A signed map with a positive and a negative blob, thresholded at 2:

    >>> import numpy as np
    >>> from skvoxel.plotting import plot_map
    >>> grid = np.indices((20, 24, 16)).astype(float)
    >>> blob = lambda centre: np.exp(
    ...     -((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(axis=0) / 8
    ... )
    >>> stat = 5 * blob((6, 12, 8)) - 4 * blob((14, 12, 8))
    >>> figure = plot_map(stat, threshold=2, colorbar_label="t")
    >>> [ax.get_title() for ax in figure.axes[:3]]
    ['axis 0 = 6', 'axis 1 = 12', 'axis 2 = 8']
    >>> figure.axes[3].get_ylabel()
    't'
    """
    plt = _pyplot()
    if display not in ("ortho", "mosaic"):
        msg = f'display must be "ortho" or "mosaic"; got {display!r}.'
        raise ValueError(msg)
    if threshold is not None and not (
        isinstance(threshold, Real) and np.isfinite(threshold) and threshold >= 0
    ):
        msg = f"threshold must be a non-negative number or None; got {threshold!r}."
        raise ValueError(msg)
    if not (isinstance(n_slices, Integral) and n_slices >= 1):
        msg = f"n_slices must be a positive integer; got {n_slices!r}."
        raise ValueError(msg)
    volume = _Volume(stat_map, "stat_map")
    data = volume.data
    shown = data.copy()
    hidden = np.isnan(data) | (data == 0)
    if threshold is not None:
        hidden |= np.abs(data) < threshold
    shown[hidden] = np.nan
    overlay = {}
    for name, value in (("background", background), ("outline", outline)):
        if value is not None:
            overlay[name] = volume.same_grid(value, name)

    finite_shown = shown[np.isfinite(shown)]
    signed = bool(np.any(shown[~np.isnan(shown)] < 0))
    if vmax is None:
        if finite_shown.size:
            vmax = float(np.abs(finite_shown).max())
        else:
            vmax = float(threshold) if threshold else 1.0
    vmax = max(vmax, float(threshold or 0.0), np.finfo(np.float32).tiny)
    shown = np.clip(shown, -vmax, vmax)  # infinities at the ends of the scale
    vmin = -vmax if signed else 0.0
    if cmap is None:
        cmap = _cold_hot(signed, (threshold or 0.0) / vmax)

    if display == "ortho":
        if cut is None:
            cut = _centre_of_largest_cluster(~np.isnan(shown))
            if cut is None:  # nothing coloured: the centre of the non-zero voxels
                cut = _centre_of_largest_cluster(data != 0)
            if cut is None:
                cut = tuple(n // 2 for n in data.shape)
        else:
            cut = volume.oriented_index(cut)
        panels = [(axis, int(cut[axis])) for axis in range(3)]
        n_rows, n_cols = 1, 3
        if figsize is None:
            figsize = (12.0, 4.4)
    else:
        present = (data != 0) & ~np.isnan(data)
        if "background" in overlay:
            present |= overlay["background"] != 0
        occupied = np.flatnonzero(present.any(axis=(0, 1)))
        if occupied.size == 0:
            occupied = np.arange(data.shape[2])
        count = min(int(n_slices), occupied[-1] - occupied[0] + 1)
        # Evenly spaced, the first and last half a step inside the extent.
        step = (occupied[-1] - occupied[0] + 1) / count
        slices = np.unique((occupied[0] + step * (np.arange(count) + 0.5)).astype(int))
        panels = [(2, int(k)) for k in slices]
        n_cols = min(len(panels), 4 if len(panels) <= 8 else 6)
        n_rows = math.ceil(len(panels) / n_cols)
        if figsize is None:
            figsize = (2.3 * n_cols + 1.4, 2.5 * n_rows + 0.8)

    figure = plt.figure(figsize=figsize, layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    image = None
    for ax, (axis, index) in zip(axes, panels, strict=False):
        image = _draw_slice(
            ax, volume, shown, overlay, axis, index, cmap, vmin, vmax, display
        )
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    colorbar = figure.colorbar(image, ax=axes[: len(panels)], shrink=0.8)
    colorbar.set_label(colorbar_label)
    if display == "mosaic":
        view = "axial slices, left of the subject on the left"
        if volume.affine is None:
            view = "slices along axis 2"
        figure.supxlabel(view, fontsize="small")
    if "outline" in overlay:
        handle = plt.Line2D([], [], color=_OUTLINE, linewidth=1.5)
        figure.legend([handle], [outline_label], loc="lower left", fontsize="small")
    if title is not None:
        figure.suptitle(title)
    return figure


def _draw_slice(ax, volume, shown, overlay, axis, index, cmap, vmin, vmax, display):
    """Draw one slice of the background, the map and the outline on ``ax``."""
    plane = [a for a in range(3) if a != axis]
    extent = [*volume.extent(plane[0]), *volume.extent(plane[1])]
    # Every layer: the slice's voxels as squares, superior / anterior up.
    layer = {"origin": "lower", "extent": extent, "interpolation": "nearest"}

    def take(array):
        return np.take(array, index, axis=axis).T

    ax.set_facecolor("black")
    if "background" in overlay:
        background = overlay["background"]
        inside = background[background != 0]
        low, high = np.percentile(inside, [2, 98]) if inside.size else (0.0, 1.0)
        ax.imshow(
            np.ma.masked_equal(take(background), 0),
            cmap="gray",
            vmin=low,
            vmax=high if high > low else low + 1,
            **layer,
        )
    else:
        silhouette = np.where(take(volume.data) != 0, 0.35, np.nan)
        ax.imshow(silhouette, cmap="gray", vmin=0, vmax=1, **layer)
    image = ax.imshow(take(shown), cmap=cmap, vmin=vmin, vmax=vmax, **layer)
    if "outline" in overlay:
        region = take(overlay["outline"]).astype(float)
        if region.any():
            ax.contour(
                volume.centres(plane[0]),
                volume.centres(plane[1]),
                region,
                levels=[0.5],
                colors=_OUTLINE,
                linewidths=1.2,
            )
    ax.set_aspect("equal")
    ax.set_title(volume.cut_label(axis, index, display), fontsize="medium")
    if display == "ortho":
        ax.set_xlabel(volume.axis_label(plane[0]))
        ax.set_ylabel(volume.axis_label(plane[1]))
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if volume.affine is not None and axis != 0:
        # Left and right of the subject on the panels that show them.
        for x, text in ((0.02, "L"), (0.98, "R")):
            ax.text(
                x,
                0.03,
                text,
                transform=ax.transAxes,
                color="white",
                fontsize="small",
                ha="left" if text == "L" else "right",
                va="bottom",
            )
    return image


def _cold_hot(signed, hidden_fraction):
    """The default colour map; ``hidden_fraction`` of the scale is the grey band.

    For a signed map the band is centred on 0 and ``hidden_fraction`` is
    ``threshold / vmax`` on each side; the colours start past it, so that
    the smallest values shown are as visible as the largest.
    """
    from matplotlib.colors import LinearSegmentedColormap

    f = min(max(hidden_fraction, 0.0), 1.0)
    if signed:
        low, high = 0.5 - f / 2, 0.5 + f / 2
        if f > 0:
            stops = [
                (0.0, _NEGATIVE[0]),
                (low, _NEGATIVE[1]),
                (low, _HIDDEN),
                (high, _HIDDEN),
                (high, _POSITIVE[0]),
                (1.0, _POSITIVE[1]),
            ]
        else:
            stops = [
                (0.0, _NEGATIVE[0]),
                (0.25, _NEGATIVE[1]),
                (0.5, _CENTRE),
                (0.75, _POSITIVE[0]),
                (1.0, _POSITIVE[1]),
            ]
    elif f > 0:
        stops = [(0.0, _HIDDEN), (f, _HIDDEN), (f, _POSITIVE[0]), (1.0, _POSITIVE[1])]
    else:
        stops = [(0.0, _CENTRE), (0.4, _POSITIVE[0]), (1.0, _POSITIVE[1])]
    return LinearSegmentedColormap.from_list("skvoxel_cold_hot", stops, N=512)


def _centre_of_largest_cluster(region):
    """The voxel of ``region``'s largest cluster nearest its centre, or None."""
    labels, n_labels = ndimage.label(region)
    if n_labels == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    voxels = np.argwhere(labels == np.argmax(sizes))
    centre = voxels.mean(axis=0)
    return tuple(int(i) for i in voxels[np.argmin(((voxels - centre) ** 2).sum(1))])


class _Volume:
    """A 3-D map as a float64 array, in RAS orientation when it is an image."""

    def __init__(self, value, name):
        data, affine = _read_volume(value, name)
        self.input_shape = data.shape
        self.affine = None
        self._input_affine = affine
        self._ornt = None
        if affine is not None:
            nib = _import_nibabel()
            orientations = nib.orientations
            self._ornt = orientations.io_orientation(affine)
            data = orientations.apply_orientation(data, self._ornt)
            self.affine = affine @ orientations.inv_ornt_aff(
                self._ornt, self.input_shape
            )
        self.data = data

    def same_grid(self, value, name):
        """Another volume on this grid (``name`` for messages), oriented alike."""
        data, affine = _read_volume(value, name)
        if data.shape != self.input_shape:
            msg = (
                f"{name} has shape {data.shape}, but stat_map has shape "
                f"{self.input_shape}: they must be on one grid."
            )
            raise ValueError(msg)
        if affine is not None and self.affine is None:
            msg = (
                f"{name} is a NIfTI image but stat_map is an array: pass both as "
                "images (or both as arrays), so that they are oriented alike."
            )
            raise ValueError(msg)
        if self._ornt is None:
            return data
        if affine is not None and not np.allclose(affine, self._input_affine):
            msg = (
                f"{name} has another affine than stat_map: it is on another grid. "
                "Resample it to the map's grid first."
            )
            raise ValueError(msg)
        return _import_nibabel().orientations.apply_orientation(data, self._ornt)

    def oriented_index(self, cut):
        """A voxel ``(i, j, k)`` of the input grid, in the displayed grid."""
        cut = np.asarray(cut)
        if cut.shape != (3,) or np.any(cut < 0) or np.any(cut >= self.input_shape):
            msg = (
                f"cut must be a voxel (i, j, k) inside the map's shape "
                f"{self.input_shape}; got {tuple(cut.tolist())}."
            )
            raise ValueError(msg)
        if self._ornt is None:
            return tuple(int(c) for c in cut)
        out = [0, 0, 0]
        for in_axis, (out_axis, flip) in enumerate(self._ornt.astype(int)):
            index = int(cut[in_axis])
            if flip == -1:
                index = self.input_shape[in_axis] - 1 - index
            out[out_axis] = index
        return tuple(out)

    def centres(self, axis):
        """Coordinates of the voxel centres along a displayed axis."""
        n = self.data.shape[axis]
        if self.affine is None:
            return np.arange(n, dtype=float)
        return self.affine[axis, 3] + self.affine[axis, axis] * np.arange(n)

    def extent(self, axis):
        """``(low, high)`` edges of the grid along a displayed axis."""
        centres = self.centres(axis)
        step = centres[1] - centres[0] if centres.size > 1 else 1.0
        return centres[0] - step / 2, centres[-1] + step / 2

    def axis_label(self, axis):
        if self.affine is None:
            return f"axis {axis} (voxel)"
        return ["x (mm), left to right", "y (mm), back to front", "z (mm)"][axis]

    def cut_label(self, axis, index, display):
        if self.affine is None:
            return f"axis {axis} = {index}"
        position = float(self.centres(axis)[index])
        name = "xyz"[axis]
        if display == "mosaic":
            return f"{name} = {position:.0f} mm"
        view = ["sagittal", "coronal", "axial"][axis]
        return f"{view}, {name} = {position:.0f} mm"


def _read_volume(value, name):
    """``(float64 3-D array, affine or None)`` from an array, image or path."""
    affine = None
    if _is_path(value):
        value = _import_nibabel().load(value)
    if _is_image(value):
        affine = np.array(value.affine, dtype=np.float64)
        data = value.get_fdata()
    else:
        data = np.asarray(value)
        if data.dtype == bool:
            data = data.astype(np.float64)
        data = np.asarray(data, dtype=np.float64)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        msg = f"{name} must be a 3-D map; got shape {data.shape}."
        raise ValueError(msg)
    return data, affine
