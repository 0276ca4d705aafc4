"""reject_complex: complex inputs are refused with a message naming them."""

import numpy as np
import pandas as pd
import pytest

from skvoxel._validation import reject_complex


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_arrays_are_refused_by_name(dtype, tmp_path):
    """Arrays and memmaps of complex dtype: the message keeps scikit-learn's
    phrase, names the input, its dtype and its owner, and says what to pass."""
    values = np.ones((4, 3), dtype=dtype)
    on_disk = np.lib.format.open_memmap(
        tmp_path / "y.npy", mode="w+", dtype=dtype, shape=(4, 3)
    )
    for candidate in (values, on_disk, values[:, ::2]):
        with pytest.raises(
            ValueError,
            match=(
                rf"^Complex data not supported: y has dtype {np.dtype(dtype)}, "
                r"but Owner works on real values\. .*np\.abs\(y\).*y\.real"
            ),
        ):
            reject_complex(candidate, "y", "Owner")


def test_pandas_inputs_are_checked_by_column():
    """A DataFrame with one complex column, or a complex Series, is refused;
    real ones pass."""
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [1j, 2.0]})
    with pytest.raises(ValueError, match=r"X has dtype complex128"):
        reject_complex(frame, "X", "Owner")
    with pytest.raises(ValueError, match=r"X has dtype complex128"):
        reject_complex(frame["b"], "X", "Owner")
    reject_complex(frame[["a"]], "X", "Owner")
    reject_complex(frame["a"], "X", "Owner")


@pytest.mark.parametrize(
    "values",
    [
        np.ones(3),
        np.ones(3, dtype=np.float32),
        np.arange(3),
        np.ones(3, dtype=bool),
        [1j, 2.0],  # no dtype: left to scikit-learn's check_array
        "text",
        None,
    ],
)
def test_other_inputs_pass(values):
    """Real arrays, and inputs without a dtype, are not this check's to refuse."""
    assert reject_complex(values, "y", "Owner") is None
