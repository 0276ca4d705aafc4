"""Root pytest configuration: keeps doctests (README included) independent."""

import os
import sys

# Figures, in tests and doctests alike, are drawn off screen.
os.environ["MPLBACKEND"] = "Agg"

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_numpy_print_options():
    """Undo np.set_printoptions calls made by a doctest (the README makes one)."""
    with np.printoptions():
        yield


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test leaves open (where pyplot has been imported)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
