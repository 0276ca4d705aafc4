"""Tests for skvoxel.cli: the command line and its quickstart."""

import subprocess
import sys

import numpy as np

from skvoxel.cli import main, quickstart


def test_quickstart_reports_the_seed_example():
    """The quickstart shows the design, pinv, data and the one-multiply fit."""
    report = quickstart(seed=3)
    assert "pinv(X), shape (2, 12):" in report
    assert "Same as one at a time: True" in report
    assert "df_resid = 10" in report


def test_main_prints_the_quickstart(capsys):
    """main() with no arguments prints the quickstart and returns 0."""
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == quickstart(seed=0)


def test_python_dash_m_runs():
    """`python -m skvoxel` runs the command line in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "skvoxel", "--seed", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == quickstart(seed=1)
    assert np.isfinite(len(done.stdout))
