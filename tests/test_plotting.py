"""Tests for skvoxel.plotting: design matrix and map figures."""

import subprocess
import sys

import numpy as np
import pytest

from skvoxel.plotting import plot_design, plot_map

matplotlib = pytest.importorskip("matplotlib")
image = pytest.importorskip("matplotlib.image")


def two_blobs(shape=(20, 24, 16)):
    """A signed map: a positive blob (peak 5) and a smaller negative one (-4)."""
    grid = np.indices(shape).astype(float)

    def blob(centre):
        offset = grid - np.reshape(centre, (3, 1, 1, 1))
        return np.exp(-(offset**2).sum(axis=0) / 8)

    return 5 * blob((6, 12, 8)) - 4 * blob((14, 12, 8))


def map_image(ax):
    """The map layer of a panel (drawn last, over the background)."""
    return ax.get_images()[-1]


def colorbar_axes(figure):
    """The colour bar's axes: the one with a y label that is not a panel."""
    return [ax for ax in figure.axes if ax.get_label() == "<colorbar>"][0]


# --- plot_design -------------------------------------------------------------


def test_plot_design_names_regressors_and_labels_axes():
    """Regressor names under the columns; axes, title and colour bar labelled."""
    pd = pytest.importorskip("pandas")
    design = pd.DataFrame(
        {"faces": np.tile([0.0, 1.0], 6), "drift": np.linspace(-1, 1, 12)}
    ).assign(constant=1.0)
    figure = plot_design(design)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "faces",
        "drift",
        "constant",
    ]
    assert ax.get_xlabel() == "regressor"
    assert ax.get_ylabel() == "volume (sample)"
    assert "12 volumes x 3 regressors" in ax.get_title()
    assert colorbar_axes(figure).get_ylabel() == "value / max |value| of its column"


def test_plot_design_scales_each_column_by_its_largest_value():
    """Displayed values are the columns over their max |value|; the input is kept."""
    X = np.column_stack([np.linspace(-2, 1, 10), np.full(10, 1000.0), np.zeros(10)])
    before = X.copy()
    figure = plot_design(X)
    shown = figure.axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(shown[:, 0], X[:, 0] / 2)
    np.testing.assert_allclose(shown[:, 1], 1.0)
    np.testing.assert_allclose(shown[:, 2], 0.0)
    np.testing.assert_array_equal(X, before)
    names = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert names == ["x0", "x1", "x2"]


@pytest.mark.parametrize(
    ("design", "names", "match"),
    [
        (np.ones(5), None, r"2-D array.*shape \(5,\)"),
        (np.full((5, 2), np.nan), None, "NaN or inf"),
        (np.ones((5, 2)), ["a"], "1 names, but design has 2 columns"),
    ],
)
def test_plot_design_rejects_bad_input(design, names, match):
    """A 1-D design, non-finite values, or the wrong number of names: ValueError."""
    with pytest.raises(ValueError, match=match):
        plot_design(design, regressor_names=names)


# --- plot_map: arrays ----------------------------------------------------------


def test_ortho_panels_go_through_the_largest_cluster_and_are_labelled():
    """Three labelled panels through the centre of the largest coloured cluster."""
    figure = plot_map(two_blobs(), threshold=2, colorbar_label="t", title="A map")
    panels = figure.axes[:3]
    assert [ax.get_title() for ax in panels] == [
        "axis 0 = 6",
        "axis 1 = 12",
        "axis 2 = 8",
    ]
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in panels] == [
        ("axis 1 (voxel)", "axis 2 (voxel)"),
        ("axis 0 (voxel)", "axis 2 (voxel)"),
        ("axis 0 (voxel)", "axis 1 (voxel)"),
    ]
    assert colorbar_axes(figure).get_ylabel() == "t"
    assert figure.get_suptitle() == "A map"


def test_threshold_hides_small_values_and_zeros():
    """Only voxels with |value| >= threshold are coloured, with their values."""
    stat = two_blobs()
    stat[stat.shape[0] // 2 :, :, :8] = 0.0  # zero (outside a mask) is never shown
    figure = plot_map(stat, threshold=2, cut=(6, 12, 8))
    axial = map_image(figure.axes[2]).get_array()  # axis 2 = 8, transposed
    expected = stat[:, :, 8].T
    visible = ~np.ma.getmaskarray(axial) & ~np.isnan(np.ma.getdata(axial))
    np.testing.assert_array_equal(visible, np.abs(expected) >= 2)
    np.testing.assert_allclose(np.ma.getdata(axial)[visible], expected[visible])


def test_signed_map_gets_a_symmetric_diverging_scale():
    """Negative values shown: colour limits -vmax..vmax; cold and hot colours."""
    figure = plot_map(two_blobs(), threshold=2)
    layer = map_image(figure.axes[0])
    low, high = layer.get_clim()
    assert low == -high and high == pytest.approx(5.0, rel=1e-3)
    cmap = layer.get_cmap()
    red, _, blue, _ = cmap(1.0)
    assert red > 0.9 and blue < 0.1  # the top is hot (yellow)
    red, green, blue, _ = cmap(0.0)
    assert blue > 0.9 and red < 0.1  # the bottom is cold (cyan)
    # The band the threshold hides is grey in the colour bar.
    grey = cmap(0.5)
    assert grey[0] == pytest.approx(grey[1]) == pytest.approx(grey[2])


def test_positive_map_gets_a_sequential_scale():
    """Only positive values shown (the negative blob is under the threshold)."""
    figure = plot_map(two_blobs(), threshold=4.5)
    low, high = map_image(figure.axes[0]).get_clim()
    assert low == 0.0 and high == pytest.approx(5.0, rel=1e-3)


def test_infinite_values_are_drawn_at_the_end_of_the_scale():
    """inf is clipped to vmax (the largest finite value), -inf to -vmax."""
    stat = two_blobs()
    stat[6, 12, 8] = np.inf
    stat[14, 12, 8] = -np.inf
    figure = plot_map(stat, threshold=2, cut=(6, 12, 8))
    layer = map_image(figure.axes[2])
    _, vmax = layer.get_clim()
    finite_max = np.abs(stat[np.isfinite(stat)]).max()
    assert vmax == pytest.approx(finite_max)
    axial = np.ma.getdata(layer.get_array())
    assert axial[12, 6] == vmax and axial[12, 14] == -vmax


def test_mosaic_shows_evenly_spaced_slices_of_the_occupied_extent():
    """n_slices panels, in order, inside the slices where the map is non-zero."""
    stat = np.zeros((10, 10, 40))
    stat[2:8, 2:8, 10:30] = 3.0
    figure = plot_map(stat, display="mosaic", n_slices=5)
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.images]
    slices = [int(title.split("= ")[1]) for title in titles]
    assert slices == sorted(slices) and len(slices) == 5
    assert 10 <= slices[0] and slices[-1] <= 29
    assert np.all(np.diff(slices) == 4)


def test_background_and_outline_are_drawn():
    """The background is a grey layer under the map; the outline a contour."""
    stat = two_blobs()
    background = np.full(stat.shape, 100.0)
    outline = np.abs(stat) > 3
    figure = plot_map(
        stat, threshold=2, background=background, outline=outline, outline_label="truth"
    )
    ax = figure.axes[0]
    assert len(ax.get_images()) == 2
    assert ax.get_images()[0].get_cmap().name == "gray"
    assert ax.collections  # the contour
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["truth"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stat_map": np.ones((3, 3))}, r"3-D map; got shape \(3, 3\)"),
        ({"display": "sideways"}, "display must be"),
        ({"threshold": -1.0}, "threshold must be a non-negative number"),
        ({"cut": (0, 0, 99)}, r"cut must be a voxel"),
        ({"n_slices": 0, "display": "mosaic"}, "n_slices must be a positive integer"),
        ({"background": np.ones((2, 2, 2))}, "background has shape"),
    ],
)
def test_plot_map_rejects_bad_input(kwargs, match):
    """Wrong dimensions, display, threshold, cut or overlay shape: ValueError."""
    kwargs = {"stat_map": two_blobs(), **kwargs}
    with pytest.raises(ValueError, match=match):
        plot_map(**kwargs)


# --- plot_map: NIfTI ---------------------------------------------------------


def test_nifti_map_is_shown_in_ras_orientation_with_mm_axes():
    """An LAS image: the subject's left (x < 0 mm) is on the left of the panels."""
    nib = pytest.importorskip("nibabel")
    stat = np.zeros((17, 21, 3))
    stat[2:5, 8:12, 1] = 4.0  # voxel i small = x large (right), as x = 32 - 4 i
    affine = np.array(
        [[-4.0, 0, 0, 32], [0, 4.0, 0, -40], [0, 0, 8.0, 0], [0, 0, 0, 1]]
    )
    figure = plot_map(nib.Nifti1Image(stat, affine), threshold=1)
    coronal, axial = figure.axes[1], figure.axes[2]
    assert coronal.get_title() == "coronal, y = -4 mm"  # j = 9, centre of 8..11
    assert axial.get_title() == "axial, z = 8 mm"
    assert axial.get_xlabel() == "x (mm), left to right"
    layer = map_image(axial)
    visible = ~np.ma.getmaskarray(layer.get_array()) & ~np.isnan(
        np.ma.getdata(layer.get_array())
    )
    left, right, _, _ = layer.get_extent()
    columns = np.flatnonzero(visible.any(axis=0))
    x = left + (columns + 0.5) * (right - left) / visible.shape[1]
    np.testing.assert_allclose(x, [16.0, 20.0, 24.0])  # voxels i = 4, 3, 2
    assert left < right


def test_nifti_overlays_must_share_the_grid():
    """A background on another affine is rejected; one on the grid is reoriented."""
    nib = pytest.importorskip("nibabel")
    stat = two_blobs()
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    background = np.arange(stat.size, dtype=float).reshape(stat.shape) + 1
    figure = plot_map(
        nib.Nifti1Image(stat, affine),
        threshold=2,
        background=nib.Nifti1Image(background, affine),
        cut=(6, 12, 8),
    )
    shown = figure.axes[2].get_images()[0].get_array()  # axial background
    np.testing.assert_array_equal(np.ma.getdata(shown), background[::-1, :, 8].T)
    with pytest.raises(ValueError, match="another affine"):
        plot_map(
            nib.Nifti1Image(stat, affine),
            background=nib.Nifti1Image(background, np.eye(4)),
        )


# --- Files, imports ------------------------------------------------------------


def test_saved_png_is_readable(tmp_path):
    """A figure saved as PNG reads back as an RGBA image with content."""
    path = tmp_path / "map.png"
    plot_map(two_blobs(), threshold=2, display="mosaic").savefig(path)
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] == 4
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    rgb = np.round(pixels[..., :3] * 255).astype(np.int64)
    colours = np.unique(rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2])
    assert colours.size > 20  # map colours, grey levels, text: not a blank image


def test_importing_skvoxel_does_not_import_matplotlib():
    """import skvoxel (and skvoxel.plotting, skvoxel.cli) leaves matplotlib alone."""
    code = (
        "import sys, skvoxel, skvoxel.plotting, skvoxel.cli; "
        "print('matplotlib' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_missing_matplotlib_names_the_extra(monkeypatch):
    """Without matplotlib, plotting raises an ImportError naming skvoxel[plot]."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install skvoxel\[plot\]"):
        plot_map(two_blobs())
    with pytest.raises(ImportError, match=r"pip install skvoxel\[plot\]"):
        plot_design(np.ones((3, 2)))
