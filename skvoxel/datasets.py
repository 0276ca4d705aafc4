"""Built-in data: a block design, and a simulated 4-D run with a known activation."""

import numpy as np
from scipy import stats
from sklearn.utils import Bunch

__all__ = ["canonical_hrf", "make_block_design", "make_simulated_run"]

# SPM's canonical HRF: a gamma density peaking at 5 s minus one sixth of a
# gamma density peaking at 15 s (the undershoot), over 32 s.
_HRF_PEAK_SHAPE = 6.0
_HRF_UNDERSHOOT_SHAPE = 16.0
_HRF_UNDERSHOOT_RATIO = 1.0 / 6.0
_HRF_LENGTH = 32.0
# Time steps per volume for convolving the block boxcar with the HRF.
_OVERSAMPLING = 16


def canonical_hrf(times):
    """SPM's canonical haemodynamic response function, of unit area.

    ``h(t) = g(t; 6) - g(t; 16) / 6`` with ``g(t; a)`` the gamma density of
    shape ``a`` and scale 1 s (peak at 5 s, undershoot at 15 s), zero for
    ``t < 0`` and after 32 s, divided by its integral so that a long block
    convolved with it plateaus at 1.

    Parameters
    ----------
    times : array-like of shape (n_times,)
        Times in seconds after the neural event.

    Returns
    -------
    hrf : ndarray of shape (n_times,)
        The response, per second.

    Examples
    --------
    >>> import numpy as np
    >>> from skvoxel.datasets import canonical_hrf
    >>> t = np.arange(0, 33, 0.01)
    >>> float(t[np.argmax(canonical_hrf(t))])
    5.0
    >>> round(float(canonical_hrf(t).sum() * 0.01), 3)
    1.0
    """
    t = np.asarray(times, dtype=np.float64)
    inside = (t >= 0) & (t <= _HRF_LENGTH)
    h = stats.gamma.pdf(t, _HRF_PEAK_SHAPE) - _HRF_UNDERSHOOT_RATIO * stats.gamma.pdf(
        t, _HRF_UNDERSHOOT_SHAPE
    )
    # Integral over [0, 32 s] of the two gamma densities.
    area = stats.gamma.cdf(_HRF_LENGTH, _HRF_PEAK_SHAPE) - (
        _HRF_UNDERSHOOT_RATIO * stats.gamma.cdf(_HRF_LENGTH, _HRF_UNDERSHOOT_SHAPE)
    )
    return np.where(inside, h / area, 0.0)


def make_block_design(n_volumes, repetition_time, *, block_volumes=10, drift_order=2):
    """A block design: a task regressor, polynomial drifts and a constant.

    Rest and task alternate in blocks of ``block_volumes`` volumes, rest
    first. The task regressor is the task's boxcar convolved with
    :func:`canonical_hrf` (computed on a grid 16 times finer than the
    volumes, then sampled at each volume's start), so that a voxel whose
    signal rises by ``b`` during long task blocks has coefficient ``b``.
    Drifts are Legendre polynomials of orders 1 to ``drift_order`` over the
    run, from -1 to 1; the last column is a constant.

    Parameters
    ----------
    n_volumes : int
        Number of volumes (rows).
    repetition_time : float
        Seconds between volumes.
    block_volumes : int, default=10
        Volumes per rest or task block.
    drift_order : int, default=2
        Highest order of the polynomial drifts (0 for none).

    Returns
    -------
    X : ndarray of shape (n_volumes, 2 + drift_order)
        The design: ``task``, ``drift_1`` ... ``drift_<order>``,
        ``constant``.
    regressor_names : list of str
        The column names.

    Examples
    --------
    >>> from skvoxel.datasets import make_block_design
    >>> X, names = make_block_design(40, 2.0)
    >>> X.shape, names
    ((40, 4), ['task', 'drift_1', 'drift_2', 'constant'])
    >>> X[8:18, 0].round(2)  # rest, then the response to the first task block
    array([0.  , 0.  , 0.  , 0.02, 0.27, 0.68, 0.98, 1.11, 1.14, 1.13])
    """
    step = repetition_time / _OVERSAMPLING
    n_fine = n_volumes * _OVERSAMPLING
    fine_volume = np.arange(n_fine) // _OVERSAMPLING
    boxcar = ((fine_volume // block_volumes) % 2 == 1).astype(np.float64)
    kernel = canonical_hrf(np.arange(0.0, _HRF_LENGTH + step, step)) * step
    task = np.convolve(boxcar, kernel)[:n_fine:_OVERSAMPLING]
    time = np.linspace(-1.0, 1.0, n_volumes)
    drifts = [
        np.polynomial.legendre.Legendre.basis(order)(time)
        for order in range(1, drift_order + 1)
    ]
    X = np.column_stack([task, *drifts, np.ones(n_volumes)])
    names = ["task", *(f"drift_{order}" for order in range(1, drift_order + 1))]
    return X, [*names, "constant"]


def make_simulated_run(
    *,
    shape=(64, 64, 40),
    n_volumes=160,
    repetition_time=2.0,
    voxel_size=3.0,
    effect=1.5,
    noise=1.5,
    seed=0,
):
    """A simulated fMRI run whose activation is known.

    A head-sized ellipsoid "brain" sits in the middle of the grid, with a
    baseline of about 1000 (brighter at its rim, like cortex, with a gentle
    bias field), and a background of low Rayleigh noise around it, as in
    EPI images. An ellipsoid blob inside the brain (about 19 % of its
    voxels) responds to the task of :func:`make_block_design` (blocks of 10
    volumes) by ``effect`` percent of its baseline. Every brain voxel also
    drifts slowly (random linear and quadratic trends, modelled by the
    design) and carries Gaussian noise of ``noise`` percent of its
    baseline, independent across voxels and volumes, so the model's
    assumptions hold: what the demo measures is the statistics, not a
    misfit of the model.

    With the defaults (64 x 64 x 40 voxels of 3 mm, 160 volumes at a
    2 s repetition time) the brain holds 43,592 voxels and the blob 8,160;
    the blob's t statistics for the task are about 6.5. The blob is large
    on purpose: Benjamini-Hochberg at level ``q`` has an expected false
    discovery proportion of ``q`` times the fraction of null voxels, here
    ``0.05 * 0.81 = 0.041``, so a demo that reports a proportion under
    ``q`` does so with room to spare, not by luck of the seed.

    Parameters
    ----------
    shape : tuple of 3 int, default=(64, 64, 40)
        The spatial grid.
    n_volumes : int, default=160
        Number of volumes.
    repetition_time : float, default=2.0
        Seconds between volumes.
    voxel_size : float, default=3.0
        Voxel edge in mm, for ``affine``.
    effect : float, default=1.5
        Response of the blob to the task, in percent of the baseline.
    noise : float, default=1.5
        Noise standard deviation, in percent of the baseline.
    seed : int, default=0
        Seed of everything random; the same seed gives the same run.

    Returns
    -------
    run : Bunch
        - ``images``: float32 array ``(n_volumes, *shape)``, samples first.
        - ``design``: the ``(n_volumes, 4)`` design of
          :func:`make_block_design` (task, two drifts, constant), and
          ``regressor_names``.
        - ``activation``: bool array of ``shape``, the voxels that respond.
        - ``brain``: bool array of ``shape``, the simulated brain.
        - ``affine``: ``(4, 4)`` voxel-to-mm affine, RAS, origin at the
          grid's centre.
        - ``repetition_time``: seconds between volumes.

    Examples
    --------
    >>> from skvoxel.datasets import make_simulated_run
    >>> run = make_simulated_run(shape=(16, 16, 10), n_volumes=40)
    >>> run.images.shape, run.images.dtype, run.regressor_names
    ((40, 16, 16, 10), dtype('float32'), ['task', 'drift_1', 'drift_2', 'constant'])
    >>> bool(run.activation[run.brain].any()), bool(run.activation[~run.brain].any())
    (True, False)
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in shape)
    design, names = make_block_design(n_volumes, repetition_time)

    # Coordinates in units of the grid's half-extent, centred.
    axes = [np.linspace(-1.0, 1.0, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    brain_radius = ((x / 0.72) ** 2 + (y / 0.88) ** 2 + (z / 0.85) ** 2) ** 0.5
    brain = brain_radius <= 1.0
    # The blob: right posterior, about 19 % of the brain.
    blob_radius = (
        ((x - 0.2) / 0.42) ** 2 + ((y + 0.3) / 0.48) ** 2 + ((z - 0.05) / 0.5) ** 2
    ) ** 0.5
    activation = (blob_radius <= 1.0) & brain

    # Baseline: about 1000, brighter at the rim, times a gentle bias field.
    bias = 1.0 + 0.08 * x - 0.05 * z
    baseline = np.where(brain, (850.0 + 250.0 * brain_radius**2) * bias, 0.0)

    inside = np.flatnonzero(brain)
    outside = np.flatnonzero(~brain)
    level = baseline.ravel()[inside]
    drift_amplitude = rng.normal(scale=0.01 * level, size=(2, inside.size))
    response = np.where(activation.ravel()[inside], effect / 100.0 * level, 0.0)
    coef = np.vstack([response, drift_amplitude, level])
    noise_sd = (noise / 100.0 * level).astype(np.float32)
    values = (design @ coef).astype(np.float32)
    values += rng.standard_normal(size=values.shape, dtype=np.float32) * noise_sd
    images = np.empty((n_volumes, *shape), dtype=np.float32)
    flat = images.reshape(n_volumes, -1)
    flat[:, inside] = values
    # Background: Rayleigh noise of scale 20 (the magnitude of complex noise),
    # by inversion of its distribution function.
    uniform = rng.random(size=(n_volumes, outside.size), dtype=np.float32)
    flat[:, outside] = 20.0 * np.sqrt(-2.0 * np.log(1.0 - uniform))
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = -voxel_size * (np.array(shape) - 1) / 2.0
    return Bunch(
        images=images,
        design=design,
        regressor_names=names,
        activation=activation,
        brain=brain,
        affine=affine,
        repetition_time=float(repetition_time),
    )
