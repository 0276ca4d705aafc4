"""Tests for skvoxel.cli: the skvoxel command line (demo, fit, quickstart)."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from skvoxel import MassUnivariateOLS, VoxelMasker, cli
from skvoxel.cli import _file_name, _parser, _split_rows, main, quickstart

nib = pytest.importorskip("nibabel")
pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
image = pytest.importorskip("matplotlib.image")


def run_main(argv):
    """``main(argv)`` with stdout and stderr captured: (status, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def load(path):
    """A NIfTI file's data (as stored) and affine."""
    img = nib.load(path)
    return np.asarray(img.dataobj), img.affine


def leftovers(folder):
    """Hidden partial or replaced output folders left in ``folder``."""
    return [
        name
        for name in os.listdir(folder)
        if name.startswith(".") and name.endswith((".partial", ".old"))
    ]


# --- quickstart, help ----------------------------------------------------------


def test_quickstart_reports_the_seed_example():
    """The quickstart shows the design, pinv, data and the one-multiply fit."""
    report = quickstart(seed=3)
    assert "pinv(X), shape (2, 12):" in report
    assert "Same as one at a time: True" in report
    assert "df_resid = 10" in report


def test_quickstart_command_prints_the_quickstart(capsys):
    """`skvoxel quickstart` prints the quickstart and returns 0."""
    assert main(["quickstart", "--seed", "2"]) == 0
    assert capsys.readouterr().out.strip() == quickstart(seed=2)


def test_no_arguments_prints_help(capsys):
    """`skvoxel` alone prints the help, naming every command, and returns 0."""
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: skvoxel")
    for command in ("demo", "fit", "quickstart"):
        assert f"skvoxel {command}" in out


def test_python_dash_m_runs():
    """`python -m skvoxel` runs the command line in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "skvoxel", "quickstart", "--seed", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == quickstart(seed=1)


def test_usage_errors_exit_2(capsys):
    """argparse's usage errors (missing option, bad --fdr) return 2."""
    assert main(["fit", "--design", "d.csv"]) == 2
    assert "--images" in capsys.readouterr().err
    assert main(["demo", "--fdr", "2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


# --- demo --------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`skvoxel demo --out DIR` on the simulated run: (status, stdout, stderr, DIR)."""
    out = tmp_path_factory.mktemp("demo")
    status, stdout, stderr = run_main(["demo", "--out", str(out)])
    return status, stdout, stderr, out


def test_demo_finds_the_simulated_blob(demo):
    """The printed sensitivity is above 0.9 and the FDP below 0.05, as in the files."""
    status, stdout, _, out = demo
    assert status == 0
    match = re.search(
        r"sensitivity (\d\.\d{4}), false discovery proportion (\d\.\d{4})", stdout
    )
    sensitivity, fdp = float(match[1]), float(match[2])
    assert sensitivity > 0.9
    assert fdp < 0.05
    # The same figures, recomputed from the maps the demo wrote.
    found = load(out / "significant_task.nii.gz")[0] > 0
    truth = load(out / "activation.nii.gz")[0] > 0
    assert found.sum() > 0 and truth.sum() > 0
    assert (found & truth).sum() / truth.sum() == pytest.approx(sensitivity, abs=5e-5)
    assert (found & ~truth).sum() / found.sum() == pytest.approx(fdp, abs=5e-5)


def test_demo_prints_size_speed_and_where_it_wrote(demo):
    """The summary gives the data size, fit time and speed, and the output folder."""
    _, stdout, stderr, out = demo
    assert "64 x 64 x 40 voxels x 160 volumes" in stdout
    assert re.search(r"fit +\d+\.\d{3} s, [\d,]+ voxels per second", stdout)
    assert re.search(r"t task: [\d,]+ voxels significant at FDR q < 0.05", stdout)
    assert f"files to {os.path.join(str(out), '')}" in stdout
    assert str(out / "z_task.png") in stdout
    assert stderr == ""  # no progress without a terminal


def test_demo_writes_maps_figures_and_summary(demo):
    """NIfTI maps on the run's grid, readable PNGs, and summary.json."""
    _, _, _, out = demo
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(os.listdir(out)) == summary["files"]
    for name in ("beta_task", "t_task", "z_task", "p_task", "mask", "mean"):
        data, affine = load(out / f"{name}.nii.gz")
        assert data.shape == (64, 64, 40)
        np.testing.assert_allclose(np.diag(affine), [3.0, 3.0, 3.0, 1.0])
    p = load(out / "p_task.nii.gz")[0]
    mask = load(out / "mask.nii.gz")[0] > 0
    assert np.all((p[mask] >= 0) & (p[mask] <= 1))
    for name in ("design.png", "z_task.png"):
        pixels = image.imread(out / name)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 300
    assert summary["data"]["n_voxels"] == int(mask.sum())
    assert summary["fit"]["df_resid"] == 156
    assert summary["truth"]["n_active"] == 8160
    assert summary["contrasts"][0]["n_significant"] == summary["truth"]["n_found"]
    assert set(summary["software"]) >= {"python", "numpy", "scikit-learn", "nibabel"}
    assert leftovers(out.parent) == []


def test_demo_on_nibabels_run(tmp_path):
    """--data nibabel fits functional.nii; there is no truth to report."""
    out = tmp_path / "nibabel-demo"
    (
        status,
        stdout,
        _,
    ) = run_main(["demo", "--data", "nibabel", "--out", str(out)])
    assert status == 0
    assert "functional.nii" in stdout and "17 x 21 x 3 voxels x 20 volumes" in stdout
    assert "sensitivity" not in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["n_voxels"] == 852
    assert "truth" not in summary


# --- fit: same maps as the Python API ----------------------------------------


@pytest.fixture
def functional_inputs(tmp_path, functional_run, functional_path):
    """functional.nii and nilearn's design for it, written as CSV with its index."""
    design, _ = functional_run
    path = tmp_path / "design.csv"
    design.to_csv(path)  # the first column (frame times) has no header
    return functional_path, path, design


def test_fit_writes_the_maps_the_python_api_gives(tmp_path, functional_inputs):
    """Every map equals VoxelMasker + MassUnivariateOLS on the same inputs."""
    images, design_path, design = functional_inputs
    out = tmp_path / "out"
    status, stdout, stderr = run_main(
        [
            "fit",
            "--images",
            str(images),
            "--design",
            str(design_path),
            "--contrast",
            "task",
            "--contrast",
            "drift_1 - drift_2",
            "--f-contrast",
            "drifts=drift_1, drift_2",
            "--out",
            str(out),
        ]
    )
    assert status == 0, stderr

    masker = VoxelMasker(mask_strategy="epi")
    Y = masker.fit_transform(images)
    model = MassUnivariateOLS().fit(design, Y)
    expected = {
        "mask": np.ones(masker.n_voxels_, dtype=np.float32),
        "mean": Y.mean(axis=0),
    }
    for name, row in zip(design.columns, model.coef_, strict=True):
        expected[f"beta_{name}"] = row
    tests = {
        "task": model.t_test("task"),
        "drift_1_minus_drift_2": model.t_test("drift_1 - drift_2"),
        "drifts": model.f_test(["drift_1", "drift_2"]),
    }
    for name, result in tests.items():
        expected[f"{result.stat_type}_{name}"] = result.stat
        expected[f"z_{name}"] = result.z_score
        expected[f"p_{name}"] = result.p_value
        expected[f"significant_{name}"] = result.significant(0.05).astype(np.float32)
        if result.stat_type == "t":
            expected[f"effect_{name}"] = result.effect

    reference = nib.load(images)
    for name, values in expected.items():
        data, affine = load(out / f"{name}.nii.gz")
        wanted = masker.inverse_transform(values).get_fdata()
        np.testing.assert_allclose(data, wanted, rtol=1e-6, atol=0, err_msg=name)
        np.testing.assert_array_equal(affine, reference.affine)
    assert data.shape == (17, 21, 3)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["design"]["regressors"] == list(design.columns)
    assert summary["fit"]["df_resid"] == model.df_resid_
    assert summary["data"]["image_shape"] == [17, 21, 3]
    assert summary["data"]["n_volumes"] == 20
    counts = {c["name"]: c["n_significant"] for c in summary["contrasts"]}
    assert counts == {
        name: int(result.significant(0.05).sum()) for name, result in tests.items()
    }
    assert [c["df"] for c in summary["contrasts"]] == [[1, 16], [1, 16], [2, 16]]
    assert summary["inputs"]["images"] == [os.path.abspath(images)]
    assert summary["software"]["skvoxel"] == summary["skvoxel"]
    assert "t task:" in stdout and "F drifts:" in stdout
    for name in ("design.png", "z_task.png", "z_drifts.png"):
        assert image.imread(out / name).shape[2] == 4


def test_fit_with_mask_tsv_and_add_constant(tmp_path, functional_inputs):
    """--mask, a TSV design without constant, and --add-constant's intercept map."""
    images, _, design = functional_inputs
    design = design.drop(columns="constant")
    design_path = tmp_path / "design.tsv"
    design.to_csv(design_path, sep="\t", index=False)
    masker = VoxelMasker(mask_strategy="variance").fit(images)
    mask_path = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(masker.mask_.astype(np.uint8), masker.affine_).to_filename(
        mask_path
    )
    out = tmp_path / "out"
    argv = ["fit", "--images", str(images), "--design", str(design_path)]
    argv += ["--mask", str(mask_path), "--add-constant", "--contrast", "task"]
    status, _, stderr = run_main([*argv, "--out", str(out), "--fdr", "0.2"])
    assert status == 0, stderr

    model = MassUnivariateOLS(fit_intercept=True).fit(design, masker.transform(images))
    intercept = masker.inverse_transform(model.intercept_).get_fdata()
    np.testing.assert_allclose(
        load(out / "intercept.nii.gz")[0], intercept, rtol=1e-6, atol=0
    )
    np.testing.assert_array_equal(load(out / "mask.nii.gz")[0] > 0, masker.mask_)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["design"]["add_constant"] is True
    assert summary["fit"]["df_resid"] == model.df_resid_ == 20 - 4
    assert summary["inputs"]["mask"] == os.path.abspath(mask_path)
    result = model.t_test("task")
    assert summary["contrasts"][0]["fdr"] == 0.2
    assert summary["contrasts"][0]["n_significant"] == int(
        result.significant(0.2).sum()
    )


def test_fit_reads_several_3d_images_in_order(tmp_path, functional_inputs):
    """--images with one 3-D file per volume: the API's t map on that list."""
    images, design_path, design = functional_inputs
    run = nib.load(images)
    paths = []
    for t in range(run.shape[3]):
        path = tmp_path / f"vol{t:02d}.nii.gz"
        nib.Nifti1Image(run.get_fdata()[..., t], run.affine).to_filename(path)
        paths.append(str(path))
    out = tmp_path / "out"
    argv = ["fit", "--images", *paths, "--design", str(design_path)]
    assert run_main([*argv, "--contrast", "task", "--out", str(out)])[0] == 0
    expected = load_api_t(paths, design)
    np.testing.assert_allclose(
        load(out / "t_task.nii.gz")[0], expected, rtol=1e-6, atol=0
    )
    # In another order, the map differs: the order of the files is the order
    # of the volumes.
    assert not np.allclose(expected, load_api_t(paths[::-1], design))


def load_api_t(paths, design):
    """The API's t map of "task" for images given as ``paths``."""
    masker = VoxelMasker(mask_strategy="epi")
    Y = masker.fit_transform(paths)
    t_map = MassUnivariateOLS().fit(design, Y).t_test("task").stat
    return masker.inverse_transform(t_map).get_fdata()


# --- fit: bad input ------------------------------------------------------------


def write_design(path, design, rows=None):
    """Write ``design`` (or its first ``rows`` rows) as CSV without index."""
    (design if rows is None else design.iloc[:rows]).to_csv(path, index=False)
    return str(path)


BAD_INPUTS = {
    "missing images": (
        lambda d: {"--images": str(d / "nope.nii.gz")},
        r"--images: no such file: .*nope\.nii\.gz$",
    ),
    "missing design": (
        lambda d: {"--design": str(d / "nope.csv")},
        r"--design: no such file: .*nope\.csv$",
    ),
    "missing mask": (
        lambda d: {"--mask": str(d / "nope.nii.gz")},
        r"--mask: no such file: .*nope\.nii\.gz$",
    ),
    "design rows": (
        lambda d: {"--design": write_design(d / "short.csv", d.design, rows=19)},
        r"--design .*short\.csv has 19 rows, but --images has 20 volumes: the "
        "design needs one row per volume",
    ),
    "unknown column": (
        lambda d: {"--contrast": "task - cars"},
        r'--contrast "task - cars": contrast "task - cars" names "cars", which is '
        r"not a regressor; the regressors are \['task', 'drift_1', 'drift_2', "
        r"'constant'\]",
    ),
    "mask shape": (
        lambda d: {"--mask": d.mask_of_shape((17, 21, 4))},
        r"--mask .*: mask has shape \(17, 21, 4\), but images have spatial shape "
        r"\(17, 21, 3\)",
    ),
    "not a NIfTI file": (
        lambda d: {"--images": write_design(d / "table.nii", d.design)},
        r"--images .*table\.nii: ",
    ),
    "text in the design": (
        lambda d: {
            "--design": write_design(d / "words.csv", d.design.assign(task="faces"))
        },
        r'column "task" is not numeric \(it holds \'faces\'\)',
    ),
    "missing value in the design": (
        lambda d: {"--design": write_design(d / "hole.csv", d.design_with_hole())},
        r'column "drift_2" has 1 missing or infinite value\(s\) '
        r"\(first in data row 5\)",
    ),
    "regressors with the same file name": (
        lambda d: {
            "--design": write_design(
                d / "names.csv",
                d.design.rename(columns={"drift_1": "drift 1", "drift_2": "drift_1"}),
            )
        },
        r'the regressors "drift 1" and "drift_1" would both be written as '
        r"beta_drift_1\.nii\.gz",
    ),
    "bad F contrast": (
        lambda d: {"--f-contrast": "task, task *"},
        r'--f-contrast "task, task \*": contrast "task \*" is not a valid expression',
    ),
}


class Inputs:
    """Good fit inputs in a folder, and builders of bad ones."""

    def __init__(self, folder, images, design):
        self.folder, self.images, self.design = folder, images, design

    def __truediv__(self, name):
        return self.folder / name

    def design_with_hole(self):
        design = self.design.copy()
        design.iloc[4, 2] = np.nan
        return design

    def mask_of_shape(self, shape):
        path = self.folder / "wrong_mask.nii.gz"
        affine = nib.load(self.images).affine
        nib.Nifti1Image(np.ones(shape, dtype=np.uint8), affine).to_filename(path)
        return str(path)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_no_output(
    case, tmp_path, functional_inputs, capsys
):
    """Each bad input: status 2, one line naming the problem, no output folder."""
    images, design_path, design = functional_inputs
    options = {
        "--images": str(images),
        "--design": str(design_path),
        "--contrast": "task",
        "--out": str(tmp_path / "out"),
    }
    change, message = BAD_INPUTS[case]
    options.update(change(Inputs(tmp_path, images, design)))
    argv = ["fit"]
    for option, value in options.items():
        argv += [option, value]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("skvoxel fit: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert captured.out == ""
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_error_after_writing_began_leaves_no_output(
    tmp_path, functional_inputs, capsys, monkeypatch
):
    """A contrast found not estimable after the fit: the partial folder is removed."""
    images, _, design = functional_inputs
    design = design.assign(task_copy=design["task"])  # rank deficient
    design_path = write_design(tmp_path / "deficient.csv", design)
    out = tmp_path / "out"
    seen = []  # the partial folders present while figures are saved
    save_figure = cli._save_figure

    def watch(plt, figure, path):
        seen.extend(leftovers(tmp_path))
        save_figure(plt, figure, path)

    monkeypatch.setattr(cli, "_save_figure", watch)
    argv = ["fit", "--images", images, "--design", design_path, "--out", str(out)]
    assert main([*argv, "--contrast", "task - task_copy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not estimable" in err
    assert seen and seen[0].startswith(".out.") and seen[0].endswith(".partial")
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_existing_output_folder_is_kept_unless_overwrite(
    tmp_path, functional_inputs, capsys
):
    """A non-empty --out is an error (kept as it was); --overwrite replaces it."""
    images, design_path, _ = functional_inputs
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["fit", "--images", images, "--design", str(design_path)]
    argv += ["--contrast", "task", "--out", str(out)]
    assert main(argv) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert os.listdir(out) == ["notes.txt"]
    assert main([*argv, "--overwrite", "-q"]) == 0
    assert "notes.txt" not in os.listdir(out) and "t_task.nii.gz" in os.listdir(out)
    assert leftovers(tmp_path) == []


def test_duplicate_contrast_names_are_an_error(tmp_path, functional_inputs, capsys):
    """Two contrasts that would write the same files: status 2, use NAME=EXPR."""
    images, design_path, _ = functional_inputs
    argv = ["fit", "--images", images, "--design", str(design_path)]
    argv += ["--contrast", "task", "--f-contrast", "task", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert 'both named "task"; name one as NAME=EXPR' in capsys.readouterr().err


def test_at_least_one_contrast_is_required(tmp_path, functional_inputs, capsys):
    """fit without --contrast or --f-contrast: status 2."""
    images, design_path, _ = functional_inputs
    argv = ["fit", "--images", images, "--design", str(design_path)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "at least one --contrast or --f-contrast" in capsys.readouterr().err


def test_missing_dependency_exits_1_naming_the_extra(monkeypatch, capsys):
    """Without pandas, the command line says which extra to install; status 1."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    assert main(["demo", "--out", "never-written"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert 'needs pandas, not installed here: pip install "skvoxel[cli]"' in err
    assert not os.path.exists("never-written")


# --- Verbosity, names ----------------------------------------------------------


def test_quiet_and_verbose_set_the_verbosity():
    """--quiet is 0, the default 1, --verbose 2; they exclude each other."""
    parser = _parser()
    assert parser.parse_args(["demo"]).verbose == 1
    assert parser.parse_args(["demo", "-q"]).verbose == 0
    assert parser.parse_args(["demo", "--verbose"]).verbose == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "-q", "-v"])


def test_verbose_reports_each_step_on_stderr(tmp_path):
    """--verbose writes the steps to stderr; the summary stays on stdout."""
    out = tmp_path / "o"
    argv = ["demo", "--data", "nibabel", "--out", str(out), "--verbose"]
    status, stdout, stderr = run_main(argv)
    assert status == 0
    assert "skvoxel demo: fitting 852 voxels x 20 volumes" in stderr
    assert "fitting" not in stdout
    # --verbose reaches the estimator: its progress lines come on stderr too.
    assert "MassUnivariateOLS.fit: done, 852 voxels" in stderr


def test_quiet_leaves_stderr_empty(tmp_path):
    """--quiet silences the steps and the fit's progress."""
    out = tmp_path / "o"
    status, _, stderr = run_main(
        ["demo", "--data", "nibabel", "--out", str(out), "--quiet"]
    )
    assert status == 0 and stderr == ""


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("faces - houses", "faces_minus_houses"),
        ("0.5*a + 0.5*b - c", "0.5_times_a_plus_0.5_times_b_minus_c"),
        ("-task", "minus_task"),
        ("`drift 1` / 2", "drift_1_over_2"),
        ("faces, houses", "faces_houses"),
    ],
)
def test_file_names_of_contrasts(text, name):
    """Expressions become file names with their operators in words."""
    assert _file_name(text) == name


def test_f_contrast_rows_split_at_commas_outside_backticks():
    """`a, b` names stay whole; the other commas separate rows."""
    assert _split_rows("a, `x, y` - b,c") == ["a", " `x, y` - b", "c"]
