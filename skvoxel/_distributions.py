"""Tails of the t and F laws and their z-scores: exact, and tabulated for maps."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import NamedTuple

import numpy as np
from numpy.polynomial import chebyshev
from scipy import special

__all__ = [
    "TailTable",
    "small_tail",
    "t_small_tail",
    "tail_table",
    "z_from_f",
    "z_from_t",
    "z_score",
]

# Tail probabilities below this are recomputed in log space for z-scores: a
# float64 p-value underflows a little below 1e-308.
_LOG_SPACE_BELOW = 1e-300


# --- Exact: scipy's incomplete beta function, log space in the far tail -------


def t_small_tail(t, df):
    """``P(T > |t|)`` for Student's t on ``df`` degrees of freedom.

    Computed as ``fdtrc(1, df, t**2) / 2`` (``t**2`` follows F(1, df)):
    the same incomplete beta function as ``stdtr(df, -|t|)``, to the same
    accuracy, and several times faster in scipy.

    Parameters
    ----------
    t : ndarray
    df : int

    Returns
    -------
    tail : ndarray of float64
        In (0, 0.5]; 0 where it underflows (``z_from_t`` goes to log space).
    """
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 0.5 * special.fdtrc(1, df, t * t)


def _log_beta(a, b):
    """``log B(a, b)``, accurate to about 2e-15 relative for all ``a, b > 0``.

    scipy's ``betaln`` loses up to 10 digits' worth (1e-10 relative) for one
    argument between about 1e4 and 1e6 and the other small: the far tails of
    t and F laws with that many degrees of freedom need it exactly. From 30
    on, the larger argument gets Stirling's series for
    ``log(Gamma(a + b) / Gamma(a))``, written without cancellation.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), b)
    big, small = np.maximum(a, b), np.minimum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_gamma_ratio = (
            (big - 0.5) * np.log1p(small / big)
            + small * np.log(big + small)
            - small
            + _stirling_series(big + small)
            - _stirling_series(big)
        )
        stirling = special.gammaln(small) - log_gamma_ratio
    return np.where(big >= 30.0, stirling, special.betaln(a, b))


def _stirling_series(z):
    """``log Gamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2)``, ``z >= 30``:
    four terms, the next below 1e-16 relative there."""
    z2 = z * z
    return (1 / 12 - (1 / 360 - (1 / 1260 - 1 / (1680 * z2)) / z2) / z2) / z


# The continued fraction converged within 12 terms wherever it is used (far
# tails of t laws of 1 to 1e12 df and F laws up to (50, 1e10), measured);
# this bounds the loop should it not.
_MAX_FRACTION_TERMS = 500
_EPS = np.finfo(np.float64).eps


def _beta_continued_fraction(a, b, x, one_minus_x):
    """The continued fraction of ``I_x(a, b)`` (DLMF 8.17.22), vectorised.

    Returns ``h`` with ``I_x(a, b) = x^a (1-x)^b h / (a B(a, b))``; it
    converges fast for ``x < (a + 1) / (a + b + 2)``, which holds in the far
    tails. ``1 - x`` is given separately: ``x`` may lie within rounding of 1
    (many degrees of freedom), where ``1 - x`` itself would keep no digits.
    Evaluated by the modified Lentz method.
    """
    tiny = 1e-300
    a, b, x, one_minus_x = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (a, b, x, one_minus_x))
    )
    # The first denominator, 1 - (a + b) x / (a + 1), without cancellation.
    d = ((1.0 - b) + (a + b) * one_minus_x) / (a + 1.0)
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    c = np.ones_like(x)
    h = d.copy()
    active = np.arange(x.size)
    for m in range(1, _MAX_FRACTION_TERMS + 1):
        am, bm, xm, cm, dm, hm = (v[active] for v in (a, b, x, c, d, h))
        for numerator in (
            m * (bm - m) * xm / ((am - 1.0 + 2 * m) * (am + 2 * m)),
            -(am + m) * (am + bm + m) * xm / ((am + 2 * m) * (am + 1.0 + 2 * m)),
        ):
            dm = 1.0 + numerator * dm
            dm = 1.0 / np.where(np.abs(dm) < tiny, tiny, dm)
            cm = 1.0 + numerator / cm
            cm = np.where(np.abs(cm) < tiny, tiny, cm)
            step = dm * cm
            hm = hm * step
        c[active], d[active], h[active] = cm, dm, hm
        active = active[np.abs(step - 1.0) > 2 * _EPS]
        if not active.size:
            break
    return h


def _log_regularized_beta_lower(a, b, log_q):
    """``log I_x(a, b)`` for ``x = 1 / (1 + q)``, where ``I_x`` underflows.

    ``q`` is given by its logarithm (it may overflow), so that both ``x``
    and ``1 - x = q / (1 + q)`` keep their digits: ``x`` is near 1 when the
    law has many degrees of freedom.
    """
    log_x = -np.logaddexp(0.0, log_q)
    log_one_minus_x = -np.logaddexp(0.0, -log_q)
    fraction = _beta_continued_fraction(a, b, np.exp(log_x), np.exp(log_one_minus_x))
    return (
        a * log_x + b * log_one_minus_x - np.log(a) - _log_beta(a, b) + np.log(fraction)
    )


def _log_t_small_tail(magnitude, df):
    """``log P(T > t)`` for ``t = magnitude > 0`` far in the tail.

    ``P(T > t) = I_x(df / 2, 1 / 2) / 2`` with ``x = df / (df + t^2)``,
    that is ``q = t^2 / df`` (taken by its logarithm: ``t^2`` may overflow).
    """
    log_q = 2.0 * np.log(magnitude) - np.log(df)
    return np.log(0.5) + _log_regularized_beta_lower(df / 2.0, 0.5, log_q)


def _log_f_upper_tail(f, df_num, df_denom):
    """``log P(F > f)`` far in the tail: ``I_x(df_denom / 2, df_num / 2)``
    with ``x = df_denom / (df_denom + df_num f)``, ``q = df_num f / df_denom``."""
    log_q = np.log(df_num) + np.log(f) - np.log(df_denom)
    return _log_regularized_beta_lower(df_denom / 2.0, df_num / 2.0, log_q)


def z_from_t(t, df, *, small_tail=None):
    """Standard normal deviate with the same upper-tail probability as ``t``.

    ``norm.isf(t_dist.sf(t, df))``, computed from the small tail on each side
    (``z = sign(t) * norm.isf(t_dist.sf(|t|))``) and in log space where that
    tail underflows, so it stays finite and accurate for any finite ``t``.

    Parameters
    ----------
    t : ndarray
    df : int
    small_tail : ndarray or None, default=None
        ``P(T > |t|)`` if already computed; it is the costly part.

    Returns
    -------
    z : ndarray of float64

    Examples
    --------
    >>> from skvoxel.stats import z_from_t
    >>> float(z_from_t(200.0, 10).round(4))
    8.9932
    >>> float(z_from_t(-1e6, 10).round(4))
    -15.8148
    """
    t = np.asarray(t, dtype=np.float64)
    magnitude = np.abs(t)
    if small_tail is None:
        small_tail = t_small_tail(magnitude, df)
    z = np.atleast_1d(-special.ndtri(small_tail))
    far = np.atleast_1d((small_tail < _LOG_SPACE_BELOW) & np.isfinite(magnitude))
    if np.any(far):
        log_tail = _log_t_small_tail(np.atleast_1d(magnitude)[far], df)
        z[far] = -special.ndtri_exp(log_tail)
    return np.copysign(z.reshape(t.shape), t)


def z_from_f(f, df_num, df_denom, *, upper_tail=None):
    """Standard normal deviate with the same upper-tail probability as ``F``.

    ``norm.isf(p)`` with ``p = F_dist.sf(f)``; for ``p > 1/2`` it is
    ``norm.ppf`` of the lower tail (precise where ``p`` is near 1), and in log
    space where ``p`` underflows.

    Parameters
    ----------
    f : ndarray
    df_num, df_denom : int
    upper_tail : ndarray or None, default=None
        ``P(F > f)`` if already computed.

    Returns
    -------
    z : ndarray of float64
    """
    f = np.asarray(f, dtype=np.float64)
    upper = special.fdtrc(df_num, df_denom, f) if upper_tail is None else upper_tail
    z = np.atleast_1d(-special.ndtri(upper))
    near_one = np.atleast_1d(upper >= 0.5)
    if np.any(near_one):
        # 1 - upper loses digits there: use the lower tail itself.
        lower = special.fdtr(df_num, df_denom, np.atleast_1d(f)[near_one])
        z[near_one] = special.ndtri(lower)
    far = np.atleast_1d((upper < _LOG_SPACE_BELOW) & np.isfinite(f))
    if np.any(far):
        log_tail = _log_f_upper_tail(np.atleast_1d(f)[far], df_num, df_denom)
        z[far] = -special.ndtri_exp(log_tail)
    return z.reshape(f.shape)


def _exact_small_tail(stat_type, stat, df_num, df_denom):
    """``P(T > |t|)`` or ``P(F > f)`` from scipy, float64."""
    if stat_type == "F":
        return special.fdtrc(df_num, df_denom, stat)
    return t_small_tail(stat, df_denom)


def _exact_z(stat_type, stat, df_num, df_denom, tail):
    """The z-score of each statistic from scipy, given its small tail."""
    if stat_type == "F":
        return z_from_f(stat, df_num, df_denom, upper_tail=tail)
    return z_from_t(stat, df_denom, small_tail=tail)


# --- Tabulated: piecewise polynomials fitted to the exact values ---------------

# The tables cover u = |t| (or sqrt(F)) in [0, _TABLE_END) with pieces of
# width 1 / _PIECES_PER_UNIT, a polynomial of degree _DEGREE on each.
# Measured on t laws of 1 to 1e5 degrees of freedom and F laws up to (20,
# 1950): within 5e-13 of scipy's values (mostly 1e-14), against a check
# tolerance of _TOLERANCE; pieces that miss it (near F = 0, where the z-score
# has a logarithmic singularity; far tails, where scipy's own last digits
# wander) are left to scipy.
_TABLE_END = 64
_PIECES_PER_UNIT = 16
_DEGREE = 8
_TOLERANCE = 2.5e-13
# Maps with fewer values use scipy directly: building a table (about 15,000
# exact values) costs more than it saves below this size.
TABLE_FROM = 1 << 15
# scipy's tail functions cost 200-300 ns a value: worth threads from this many
# values (the tables run on the calling thread: see _by_chunks).
PARALLEL_FROM = 1 << 14
# Values per call of a tail function: 256 KiB arrays, in cache (measured 2-3x
# faster than whole maps for the tables).
CACHE_CHUNK = 1 << 15


class TailTable(NamedTuple):
    """Piecewise polynomials for the tails of one law, over ``u`` in pieces.

    On piece ``i`` (``u`` in ``[i, i + 1) / _PIECES_PER_UNIT``) with local
    coordinate ``x`` in ``[-1/2, 1/2)``, ``sum(coef[k, i] * x**k)`` gives the
    small tail itself, its logarithm, and the z-score (divided by ``u`` for
    t, whose z is then accurate relative to itself down to ``t = 0``). The
    last piece stands for everything beyond the table.
    """

    tail: np.ndarray
    """``(_DEGREE + 1, n_pieces + 1)`` power-basis coefficients."""
    log_tail: np.ndarray
    """``(_DEGREE + 1, n_pieces + 1)`` power-basis coefficients."""
    z_part: np.ndarray
    """``(_DEGREE + 1, n_pieces + 1)`` power-basis coefficients."""
    direct: np.ndarray
    """``(n_pieces + 1,)`` bool: pieces whose ``tail`` polynomial is within
    ``_TOLERANCE`` of scipy, relative, at every check point (no ``exp``
    needed); the far tail, where the tail falls too steeply across a piece,
    is not."""
    exact: np.ndarray
    """``(n_pieces + 1,)`` bool: pieces whose ``log_tail`` and ``z_part``
    are within ``_TOLERANCE`` of scipy at every check point; False for the
    piece beyond the table."""


def _exact_tail_and_z(stat_type, u, df_num, df_denom):
    """Exact small tail and z-score at ``u >= 0`` (``stat = u`` or ``u**2``)."""
    stat = u * u if stat_type == "F" else u
    tail = _exact_small_tail(stat_type, stat, df_num, df_denom)
    return tail, _exact_z(stat_type, stat, df_num, df_denom, tail)


@lru_cache(maxsize=32)
def tail_table(stat_type, df_num, df_denom):
    """Build (once per law) and check the table of a t or F law.

    Each piece interpolates the exact values at its ``_DEGREE + 1``
    Chebyshev points, then is evaluated, exactly as maps are, at six check
    points spread over the piece, its start included; it is used only where
    it agrees with scipy there within ``_TOLERANCE`` (relative for tails;
    relative for z-scores beyond ``|z| = 1``, absolute below).

    Parameters
    ----------
    stat_type : {"t", "F"}
    df_num, df_denom : int

    Returns
    -------
    table : TailTable
    """
    width = 1.0 / _PIECES_PER_UNIT
    # The table ends where the tail underflows (log space is scipy's there).
    ends = np.arange(1, _TABLE_END * _PIECES_PER_UNIT + 1) * width
    end_stat = ends * ends if stat_type == "F" else ends
    end_tail = _exact_small_tail(stat_type, end_stat, df_num, df_denom)
    n_pieces = int(np.count_nonzero(end_tail >= _LOG_SPACE_BELOW))
    starts = np.arange(n_pieces) * width
    nodes = np.cos(np.pi * (np.arange(_DEGREE + 1) + 0.5) / (_DEGREE + 1))
    u = (starts[:, np.newaxis] + (nodes + 1.0) * (width / 2)).ravel()
    tail, z_part = _exact_tail_and_z(stat_type, u, df_num, df_denom)
    with np.errstate(divide="ignore"):
        log_tail = np.log(tail)
    if stat_type == "t":
        z_part /= u  # z / |t|: smooth, and keeps z's relative accuracy near 0
    # Values at the Chebyshev points -> Chebyshev -> power coefficients in
    # the node variable (on [-1, 1]) -> in x = node / 2 (on [-1/2, 1/2)),
    # which is scaling power k by 2**k: exact in binary.
    to_chebyshev = np.linalg.inv(chebyshev.chebvander(nodes, _DEGREE))
    to_power = np.zeros((_DEGREE + 1, _DEGREE + 1))
    for k in range(_DEGREE + 1):  # row k: the power coefficients of T_k
        to_power[k, : k + 1] = chebyshev.cheb2poly(np.eye(k + 1)[k])
    fit = to_chebyshev.T @ to_power * 2.0 ** np.arange(_DEGREE + 1)
    beyond = np.zeros((_DEGREE + 1, _TABLE_END * _PIECES_PER_UNIT - n_pieces + 1))
    with np.errstate(invalid="ignore"):
        # Row k holds every piece's coefficient of x**k, contiguous for take.
        coefficients = [
            np.ascontiguousarray(
                np.hstack([(values.reshape(n_pieces, -1) @ fit).T, beyond])
            )
            for values in (tail, log_tail, z_part)
        ]

    checks = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0 - 2.0**-20])
    u_check = (starts[:, np.newaxis] + (checks + 1.0) * (width / 2)).ravel()
    exact_tail, exact_z = _exact_tail_and_z(stat_type, u_check, df_num, df_denom)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        tail_check, log_tail_check, z_check = (
            _evaluate(array, u_check)[0] for array in coefficients
        )
        if stat_type == "t":
            z_check *= u_check
        direct_ok = np.abs(tail_check - exact_tail) <= _TOLERANCE * exact_tail
        # |log p - log p'| is the relative error of p.
        log_ok = np.abs(log_tail_check - np.log(exact_tail)) <= _TOLERANCE
        z_ok = np.abs(z_check - exact_z) <= _TOLERANCE * np.fmax(np.abs(exact_z), 1.0)

    def every_check(ok):
        flags = np.zeros(_TABLE_END * _PIECES_PER_UNIT + 1, dtype=bool)
        flags[:n_pieces] = ok.reshape(n_pieces, -1).all(axis=1)
        flags.setflags(write=False)
        return flags

    for array in coefficients:
        array.setflags(write=False)
    return TailTable(
        *coefficients, direct=every_check(direct_ok), exact=every_check(log_ok & z_ok)
    )


class _Workspace:
    """Arrays one thread reuses from chunk to chunk of a map.

    A fresh temporary of a chunk's size costs page faults on every chunk;
    reused arrays cost them once (the tables' evaluation: 0.5 ms of a
    chunk's 1 ms went to allocating its temporaries).
    """

    def __init__(self, size):
        self.size = size
        self.u, self.x, self.whole, self.term = (np.empty(size) for _ in range(4))
        self.piece = np.empty(size, dtype=np.intp)


_local = threading.local()


def _workspace(size):
    """This thread's workspace, with room for ``size`` values."""
    work = getattr(_local, "work", None)
    if work is None or work.size < size:
        work = _local.work = _Workspace(max(size, CACHE_CHUNK))
    return work


def _evaluate(coefficients, u, out=None):
    """Evaluate a table's polynomials at ``u >= 0``; return values and pieces.

    NaN and values beyond the table land on the last piece (zeros). The
    values go into ``out`` (a new array if None); the pieces are a view of
    this thread's workspace, valid until its next evaluation.
    """
    n = u.size
    work = _workspace(n)
    x, whole, term, piece = work.x[:n], work.whole[:n], work.term[:n], work.piece[:n]
    value = np.empty(n) if out is None else out
    np.multiply(u, _PIECES_PER_UNIT, out=x)
    np.fmin(x, _TABLE_END * _PIECES_PER_UNIT, out=x)  # beyond the table, NaN too
    np.floor(x, out=whole)
    np.copyto(piece, whole, casting="unsafe")
    whole += 0.5
    np.subtract(x, whole, out=x)  # in [-1/2, 1/2) on the piece
    # Pieces lie in the table by construction (u is capped, NaN too, by
    # fmin): "clip" skips take's bounds check, a sixth of the cost.
    coefficients[_DEGREE].take(piece, out=value, mode="clip")
    for k in range(_DEGREE - 1, -1, -1):
        value *= x
        value += coefficients[k].take(piece, out=term, mode="clip")
    return value, piece


def _magnitude(stat_type, stat):
    """The tables' variable, ``|t|`` or ``sqrt(F)``, in this thread's workspace."""
    u = _workspace(stat.size).u[: stat.size]
    return np.sqrt(stat, out=u) if stat_type == "F" else np.abs(stat, out=u)


def _tabulated_tail(table, stat_type, df_num, df_denom, stat, out=None):
    """Small tails of ``stat`` from the table; scipy where it is not exact.

    The tail polynomial where it holds (every value of most maps), its
    logarithm's and ``exp`` in the far tail, scipy where neither does.
    """
    u = _magnitude(stat_type, stat)
    tail, piece = _evaluate(table.tail, u, out)
    # A tail cannot exceed its value at 0 (a rounding step above it can).
    np.minimum(tail, 1.0 if stat_type == "F" else 0.5, out=tail)
    far = np.flatnonzero(~table.direct.take(piece, mode="clip"))
    if far.size:
        far_tail, far_piece = _evaluate(table.log_tail, u[far])
        np.exp(far_tail, out=far_tail)
        slow = np.flatnonzero(~table.exact.take(far_piece, mode="clip"))
        if slow.size:
            far_stat = stat[far[slow]]
            far_tail[slow] = _exact_small_tail(stat_type, far_stat, df_num, df_denom)
        tail[far] = far_tail
    return tail


def _tabulated_z(table, stat_type, df_num, df_denom, stat, tail, out=None):
    """z-scores of ``stat`` from the table; scipy where it is not exact."""
    u = _magnitude(stat_type, stat)
    z, piece = _evaluate(table.z_part, u, out)
    if stat_type == "t":
        with np.errstate(invalid="ignore"):  # inf * 0: scipy's value follows
            z *= stat
    slow = np.flatnonzero(~table.exact.take(piece, mode="clip"))
    if slow.size:
        z[slow] = _exact_z(stat_type, stat[slow], df_num, df_denom, tail[slow])
    return z


def _by_chunks(function, *arrays, dtype=np.float64, writes_out=False, threads=False):
    """``function(*arrays)``, elementwise, on runs of ``CACHE_CHUNK`` values.

    Each run is converted to float64 there, so that temporaries stay in
    cache and no float64 copy of a whole float32 map is made. The result is
    ``dtype``. With ``writes_out``, ``function`` takes ``out=``, a float64
    run of the result to write into (when the result is float64). With
    ``threads``, large maps are split over threads on every core: worth it
    for scipy's special functions, long calls that release the GIL (200,000
    values: 38 ms on two threads against 73 ms on one), not for the tables,
    whose many short numpy calls pass the GIL back and forth (200,000 values:
    5.6-8.2 ms on two threads against 3.6-6.8 ms on one).
    """
    shape = np.shape(arrays[0])
    flat = [np.ravel(array) for array in arrays]
    size = flat[0].size
    out = np.empty(size, dtype=dtype)
    n_threads = max(min(os.cpu_count() or 1, size // PARALLEL_FROM), 1)
    if not threads:
        n_threads = 1
    bounds = np.linspace(0, size, n_threads + 1).astype(int)
    in_place = writes_out and out.dtype == np.float64

    def run(i):
        for start in range(bounds[i], bounds[i + 1], CACHE_CHUNK):
            stop = min(start + CACHE_CHUNK, bounds[i + 1])
            chunks = (np.asarray(a[start:stop], dtype=np.float64) for a in flat)
            if in_place:
                function(*chunks, out=out[start:stop])
            else:
                out[start:stop] = function(*chunks)

    if n_threads == 1:
        run(0)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(run, range(n_threads)))
    return out.reshape(shape)


def small_tail(stat_type, stat, df_num, df_denom):
    """``P(T > |t|)`` for t, ``P(F > f)`` for F, for every value of a map.

    Maps of ``TABLE_FROM`` values or more are read off the law's
    :func:`tail_table` (within ``1e-12`` of scipy, relative); smaller maps,
    values beyond the table and pieces the table could not fit come from
    scipy, split over every core from ``PARALLEL_FROM`` values.

    Parameters
    ----------
    stat_type : {"t", "F"}
    stat : ndarray of float64 or float32
    df_num, df_denom : int

    Returns
    -------
    tail : ndarray of float64, the shape of ``stat``
    """
    stat = np.asarray(stat)
    if stat.size < TABLE_FROM:
        function = partial(
            _exact_small_tail, stat_type, df_num=df_num, df_denom=df_denom
        )
        tabulated = False
    else:
        table = tail_table(stat_type, df_num, df_denom)
        function = partial(_tabulated_tail, table, stat_type, df_num, df_denom)
        tabulated = True
    with np.errstate(over="ignore"):
        return _by_chunks(function, stat, writes_out=tabulated, threads=not tabulated)


def z_score(stat_type, stat, df_num, df_denom, tail, dtype=np.float64):
    """z-scores of a map of t or F statistics, given their small tails.

    Tabulated like :func:`small_tail` (within ``1e-12`` of scipy: relative
    beyond ``|z| = 1``, absolute below); signed like ``t`` for t.

    Parameters
    ----------
    stat_type : {"t", "F"}
    stat : ndarray of float64 or float32
    df_num, df_denom : int
    tail : ndarray of float64
        The map's :func:`small_tail`.
    dtype : numpy dtype, default=numpy.float64
        The dtype of the result (computed in float64 in any case).

    Returns
    -------
    z : ndarray of ``dtype``, the shape of ``stat``
    """
    stat = np.asarray(stat)
    if stat.size < TABLE_FROM:
        exact = partial(_exact_z, stat_type, df_num=df_num, df_denom=df_denom)

        def function(chunk, tail_chunk):
            return exact(chunk, tail=tail_chunk)

        tabulated = False
    else:
        table = tail_table(stat_type, df_num, df_denom)
        function = partial(_tabulated_z, table, stat_type, df_num, df_denom)
        tabulated = True
    return _by_chunks(
        function, stat, tail, dtype=dtype, writes_out=tabulated, threads=not tabulated
    )
