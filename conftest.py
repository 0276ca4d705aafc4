"""Root pytest configuration: keeps doctests (README included) independent."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _restore_numpy_print_options():
    """Undo np.set_printoptions calls made by a doctest (the README makes one)."""
    with np.printoptions():
        yield
