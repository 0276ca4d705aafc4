"""Input checks the estimators and the score share, beyond scikit-learn's."""

__all__ = ["reject_complex"]


def reject_complex(values, name, owner):
    """Raise a ``ValueError`` that names ``values`` if it holds complex numbers.

    scikit-learn rejects complex data with "Complex data not supported"
    followed by the whole array, which does not say which input it was. This
    message keeps that phrase (scikit-learn's estimator checks look for it)
    and names the input, its dtype and the real quantities to pass instead.
    Inputs with a dtype (arrays, memmaps, pandas objects) are checked without
    a copy; others, such as lists, are left to scikit-learn's check.

    Parameters
    ----------
    values : object
        The input as the user passed it.
    name : str
        Its name in the call, such as ``"y"``.
    owner : str
        What refuses it, such as ``"MassUnivariateOLS"``.

    Raises
    ------
    ValueError
        If ``values`` has a complex dtype (a DataFrame: a complex column).

    Examples
    --------
    >>> import numpy as np
    >>> reject_complex(np.ones(3), "y", "MassUnivariateOLS")  # real: no error
    >>> reject_complex(np.ones(3) * 1j, "y", "MassUnivariateOLS")
    Traceback (most recent call last):
    ...
    ValueError: Complex data not supported: y has dtype complex128, but ...
    """
    dtype = getattr(values, "dtype", None)
    # A DataFrame has no dtype but one per column.
    dtypes = [dtype] if dtype is not None else getattr(values, "dtypes", [])
    found = next((d for d in dtypes if getattr(d, "kind", None) == "c"), None)
    if found is None:
        return
    msg = (
        f"Complex data not supported: {name} has dtype {found}, but {owner} "
        f"works on real values. Pass a real quantity instead, such as its "
        f"magnitude (np.abs({name})) or its real part ({name}.real)."
    )
    raise ValueError(msg)
