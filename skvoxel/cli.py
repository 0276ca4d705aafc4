"""Command line: ``skvoxel demo``, ``skvoxel fit`` and ``skvoxel quickstart``."""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from . import __version__, datasets
from .linear_model import MassUnivariateOLS
from .masking import VoxelMasker
from .stats import contrast_matrix

__all__ = ["main", "quickstart"]

_CLI_EXTRA = 'pip install "skvoxel[cli]"'
_DEMO_OUT = "skvoxel-demo"
_FDR_METHOD = "fdr_bh"
# How a contrast's operators read in file names: "faces - houses" is written
# to t_faces_minus_houses.nii.gz.
_OPERATOR_WORDS = {"-": "minus", "+": "plus", "*": "times", "/": "over"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_DESCRIPTION = """\
Fit one linear model to every voxel of a 4-D run and write the maps.

  skvoxel demo         simulated run (or nibabel's real one): fit, test, FDR
  skvoxel fit          your images and design: beta, t/F, z and p maps
  skvoxel quickstart   the notebook skvoxel grew from, printed
"""

_EPILOG = """\
exit status: 0 success; 1 an optional dependency is missing
(pip install "skvoxel[cli]"); 2 bad input (a missing file, a design that
does not match the images, an unknown regressor in a contrast, a mask on
another grid, ...), reported in one line on stderr. Output goes to a hidden
temporary folder next to --out and is moved into place only when complete.
"""

_FIT_EPILOG = """\
contrasts: --contrast EXPR gives a t test, e.g. "faces - houses" or
"0.5*faces + 0.5*houses - scrambled" (names in backticks when they are not
identifiers: "`drift 1`"). --f-contrast "faces, houses" gives an F test
whose rows are the comma-separated expressions. Either may be named,
NAME=EXPR ("faces_vs_houses=faces - houses"); the name (by default the
expression in words) names the output files.

design: a CSV (comma) or TSV (tab; .tsv) file with a header row of
regressor names and one row of numbers per volume. A first column with an
empty header (the index pandas' to_csv writes) is row labels, not a
regressor.

outputs in --out: beta_<regressor>.nii.gz per regressor (and
intercept.nii.gz with --add-constant); for each t contrast t_, z_, p_
(two-sided), effect_ and significant_<name>.nii.gz (FDR, Benjamini-Hochberg
at --fdr), for each F contrast F_, z_, p_ and significant_<name>.nii.gz;
mask.nii.gz, mean.nii.gz (the mean image), design.tsv, design.png,
z_<name>.png per contrast and summary.json (inputs, shapes, degrees of
freedom, significant voxel counts, software versions).
"""


class InputError(Exception):
    """Bad input to the command line: reported in one line, exit status 2."""


class MissingDependencyError(Exception):
    """An optional dependency the command needs is missing: exit status 1."""


def quickstart(seed=0):
    """Reproduce the seed notebook and return its printed report.

    A 12-row design with a linear trend and a constant, its pseudo-inverse,
    three data vectors drawn from the standard normal, each fitted alone
    with ``pinv(X) @ y_k``, then all three at once.

    Parameters
    ----------
    seed : int, default=0
        Seed of the random data vectors.

    Returns
    -------
    report : str
        What the quickstart prints.

    Examples
    --------
    >>> print(quickstart().splitlines()[0])
    Design X (12 samples x 2 regressors: linear trend, constant)
    """
    X = np.ones((12, 2))
    X[:, 0] = np.linspace(-1, 1, 12)
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(12, 3))
    model = MassUnivariateOLS().fit(X, Y)
    one_at_a_time = np.stack([model.pinv_ @ Y[:, k] for k in range(3)], axis=1)
    with np.printoptions(precision=2, suppress=True):
        lines = [
            "Design X (12 samples x 2 regressors: linear trend, constant)",
            str(X),
            f"pinv(X), shape {model.pinv_.shape}:",
            str(model.pinv_),
            "Data Y: three voxels y_0, y_1, y_2 as columns, shape (12, 3):",
            str(Y),
            "One voxel at a time, pinv(X) @ y_k, as columns:",
            str(one_at_a_time),
            "All voxels with one multiply, MassUnivariateOLS().fit(X, Y).coef_"
            " (row 0 slopes, row 1 intercepts):",
            str(model.coef_),
            f"Same as one at a time: {np.allclose(model.coef_, one_at_a_time)}",
            f"Residual variance per voxel (df_resid = {model.df_resid_}):",
            str(model.sigma2_),
        ]
    return "\n".join(lines)


def main(argv=None):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 1 when an optional dependency is missing, 2 on bad
        input (with a one-line message on stderr).

    Examples
    --------
    >>> main(["quickstart"])  # doctest: +ELLIPSIS
    Design X (12 samples x 2 regressors: linear trend, constant)
    ...
    0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse reported
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except InputError as error:
        _error(args.command, error)
        return 2
    except MissingDependencyError as error:
        _error(args.command, error)
        return 1
    except KeyboardInterrupt:
        _error(args.command, "interrupted; no output was written.")
        return 130


def _error(command, message):
    """One line on stderr: ``skvoxel <command>: error: <message>``."""
    line = str(message).strip().splitlines()[0] if str(message).strip() else ""
    print(f"skvoxel {command}: error: {line}", file=sys.stderr)


# --- Arguments ---------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(
        prog="skvoxel",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(dest="command", title="commands")

    chatter = argparse.ArgumentParser(add_help=False)
    group = chatter.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbose",
        action="store_const",
        const=0,
        default=1,
        help="nothing on stderr but errors (the summary still goes to stdout); "
        "by default the fit shows a progress bar on a terminal",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbose",
        action="store_const",
        const=2,
        help="each step and the fit's progress on stderr",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--fdr",
        type=_probability,
        default=0.05,
        metavar="Q",
        help="false discovery rate for the significant voxels (default 0.05)",
    )
    output.add_argument(
        "--display",
        choices=["ortho", "mosaic"],
        default="mosaic",
        help="slices of the z map figures (default mosaic)",
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out when it exists and is not empty",
    )

    demo = commands.add_parser(
        "demo",
        parents=[output, chatter],
        help="fit a built-in run, test its task, and report",
        description="Simulate a 4-D run with a known activation (or take the "
        "real run nibabel ships), fit a block design to every voxel, t-test the "
        "task, apply FDR, print a summary (for simulated data: sensitivity and "
        "false discovery proportion against the truth) and write maps and "
        "figures.",
    )
    demo.add_argument(
        "--out",
        default=_DEMO_OUT,
        metavar="DIR",
        help=f"output folder (default ./{_DEMO_OUT}/)",
    )
    demo.add_argument(
        "--data",
        choices=["simulated", "nibabel"],
        default="simulated",
        help="simulated: 64 x 64 x 40 voxels, 160 volumes, a known blob "
        "(default); nibabel: the 17 x 21 x 3 x 20 run functional.nii",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the simulated run (default 0)"
    )
    demo.set_defaults(run=_run_demo)

    fit = commands.add_parser(
        "fit",
        parents=[output, chatter],
        help="fit a design to NIfTI images and write beta, t/F, z and p maps",
        description="Fit a design to every voxel of NIfTI images, test\n"
        "contrasts, and write maps, figures and a JSON summary.",
        epilog=_FIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument(
        "--images",
        nargs="+",
        required=True,
        metavar="IMAGE",
        help="a 4-D NIfTI run, or several 3-D/4-D images in order",
    )
    fit.add_argument(
        "--design", required=True, help="CSV or TSV, header of regressor names"
    )
    fit.add_argument(
        "--mask", help="NIfTI mask on the images' grid (default: computed)"
    )
    fit.add_argument(
        "--mask-strategy",
        choices=["epi", "nonzero", "variance"],
        default="epi",
        help="how to compute the mask without --mask (default epi)",
    )
    fit.add_argument(
        "--contrast",
        action="append",
        default=[],
        metavar="[NAME=]EXPR",
        help='t contrast, e.g. "faces - houses" (repeatable)',
    )
    fit.add_argument(
        "--f-contrast",
        action="append",
        default=[],
        metavar="[NAME=]EXPR,EXPR",
        help='F contrast, rows separated by commas, e.g. "faces, houses" (repeatable)',
    )
    fit.add_argument(
        "--add-constant",
        action="store_true",
        help="fit an intercept (written to intercept.nii.gz)",
    )
    fit.add_argument("--out", required=True, metavar="DIR", help="output folder")
    fit.set_defaults(run=_run_fit)

    quick = commands.add_parser(
        "quickstart",
        help="print the seed notebook's example: many voxels, one multiply",
        description="Fit a trend and a constant to three random data vectors, "
        "one at a time and all at once, and print every step.",
    )
    quick.add_argument("--seed", type=int, default=0, help="seed of the data")
    quick.set_defaults(run=_run_quickstart)
    return parser


def _probability(text):
    """argparse type: a number in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        msg = f"expected a number between 0 and 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


# --- Commands ----------------------------------------------------------------


def _run_quickstart(args):
    print(quickstart(seed=args.seed))
    return 0


def _run_demo(args):
    nib, pd = _import_extras()
    started = time.perf_counter()
    images, design, source, truth = _demo_inputs(args, nib, pd)
    contrasts = [_Contrast("task", "task", "t", "task")]
    with _OutputFolder(args.out, overwrite=args.overwrite) as work:
        outline = None
        if truth is not None:
            outline = nib.Nifti1Image(truth.astype(np.uint8), images.affine)
            outline.to_filename(os.path.join(work, "activation.nii.gz"))
        summary, significant = _analyse(
            images,
            design,
            contrasts,
            work=work,
            args=args,
            mask=None,
            mask_strategy="epi",
            add_constant=False,
            outline=outline,
            outline_label="simulated activation",
        )
        summary["inputs"] = {"data": args.data, "source": source}
        if truth is not None:
            summary["inputs"]["seed"] = args.seed
            found = np.asarray(significant["task"].dataobj) > 0
            summary["truth"] = _truth_report(found, truth)
        summary["seconds_total"] = time.perf_counter() - started
        _write_summary(work, summary)
    _print_report(f"skvoxel demo: {source}", summary, args.out)
    return 0


def _demo_inputs(args, nib, pd):
    """The demo's images, design, a description, and the truth (or None)."""
    if args.data == "simulated":
        _say(args, f"simulating a run (seed {args.seed})")
        run = datasets.make_simulated_run(seed=args.seed)
        # NIfTI is time last; the masker reads this view without a copy.
        images = nib.Nifti1Image(np.moveaxis(run.images, 0, -1), run.affine)
        design = pd.DataFrame(run.design, columns=run.regressor_names)
        return images, design, f"simulated run (seed {args.seed})", run.activation
    path = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
    path = os.path.join(path, "functional.nii")
    images = nib.load(path)
    repetition_time = float(images.header.get_zooms()[3])
    X, names = datasets.make_block_design(
        images.shape[3], repetition_time, block_volumes=5
    )
    design = pd.DataFrame(X, columns=names)
    return images, design, f"nibabel's functional.nii ({path})", None


def _run_fit(args):
    nib, pd = _import_extras()
    started = time.perf_counter()
    if not args.contrast and not args.f_contrast:
        msg = "give at least one --contrast or --f-contrast."
        raise InputError(msg)
    for option, paths in (
        ("--images", args.images),
        ("--design", [args.design]),
        ("--mask", [args.mask] if args.mask else []),
    ):
        for path in paths:
            _check_file(path, option)
    design = _read_design(args.design, pd)
    contrasts = _parse_contrasts(args, list(design.columns))
    n_volumes = _count_volumes(args.images, nib)
    if design.shape[0] != n_volumes:
        msg = (
            f"--design {args.design} has {design.shape[0]} rows, but --images has "
            f"{n_volumes} volumes: the design needs one row per volume."
        )
        raise InputError(msg)
    images = args.images[0] if len(args.images) == 1 else list(args.images)
    with _OutputFolder(args.out, overwrite=args.overwrite) as work:
        summary, _ = _analyse(
            images,
            design,
            contrasts,
            work=work,
            args=args,
            mask=args.mask,
            mask_strategy=args.mask_strategy,
            add_constant=args.add_constant,
        )
        summary["inputs"] = {
            "images": [os.path.abspath(path) for path in args.images],
            "design": os.path.abspath(args.design),
            "mask": os.path.abspath(args.mask) if args.mask else None,
            "mask_strategy": None if args.mask else args.mask_strategy,
        }
        summary["seconds_total"] = time.perf_counter() - started
        _write_summary(work, summary)
    _print_report(f"skvoxel fit: {', '.join(args.images)}", summary, args.out)
    return 0


# --- The analysis both commands run ------------------------------------------


@dataclass(frozen=True)
class _Contrast:
    """A contrast from the command line."""

    name: str  # names the output files
    text: str  # as given, for messages
    kind: str  # "t" or "F"
    expression: str | list  # a str (t), a list of str (the rows of F)

    @property
    def option(self):
        return "--contrast" if self.kind == "t" else "--f-contrast"

    @property
    def label(self):
        """For figure titles: "faces - houses", or name = expression."""
        name, equals, body = self.text.partition("=")
        return f"{name.strip()} = {body.strip()}" if equals else f'"{self.text}"'


def _analyse(
    images,
    design,
    contrasts,
    *,
    work,
    args,
    mask,
    mask_strategy,
    add_constant,
    outline=None,
    outline_label="outline",
):
    """Mask, fit, test every contrast, write maps and figures into ``work``.

    Returns the summary (a dict for summary.json) and the FDR maps (images)
    by contrast name.
    """
    from . import plotting

    plt = plotting._pyplot()
    _say(args, "reading and masking the images")
    masker = (
        VoxelMasker(mask_strategy=mask_strategy)
        if mask is None
        else (VoxelMasker(mask))
    )
    with _blame("--images" if mask is None else f"--mask {mask}"):
        masker.fit(images)
    with _blame("--images"):
        Y = masker.transform(images)

    model = MassUnivariateOLS(fit_intercept=add_constant, verbose=args.verbose)
    _say(args, f"fitting {Y.shape[1]:,} voxels x {Y.shape[0]} volumes")
    tic = time.perf_counter()
    with _blame("--design"):
        model.fit(design, Y)
    fit_seconds = time.perf_counter() - tic

    def save(values, name, dtype=None):
        """Write a voxel map as ``<name>.nii.gz``; return the image."""
        image = masker.inverse_transform(values)
        if dtype is not None:
            image.set_data_dtype(dtype)
        image.to_filename(os.path.join(work, f"{name}.nii.gz"))
        return image

    _say(args, f"writing maps and figures to {args.out}")
    regressors = [str(name) for name in design.columns]
    for row, name in zip(model.coef_, _unique_file_names(regressors), strict=True):
        save(row, f"beta_{name}")
    if add_constant:
        save(model.intercept_, "intercept")
    save(np.ones(masker.n_voxels_, dtype=np.float32), "mask", np.uint8)
    mean = save(Y.mean(axis=0), "mean")
    design.to_csv(os.path.join(work, "design.tsv"), sep="\t", index=False)
    figure = plotting.plot_design(_displayed_design(design, add_constant))
    _save_figure(plt, figure, os.path.join(work, "design.png"))

    results, significant = [], {}
    for contrast in contrasts:
        _say(args, f"testing {contrast.kind} contrast {contrast.text!r}")
        with _blame(f'{contrast.option} "{contrast.text}"'):
            if contrast.kind == "t":
                result = model.t_test(contrast.expression)
            else:
                result = model.f_test(contrast.expression)
        found = result.significant(alpha=args.fdr, method=_FDR_METHOD)
        maps = {
            result.stat_type: result.stat,
            "z": result.z_score,
            "p": result.p_value,
        }
        if contrast.kind == "t":
            maps["effect"] = result.effect
        for prefix, values in maps.items():
            save(values, f"{prefix}_{contrast.name}")
        significant[contrast.name] = save(
            found.astype(np.float32), f"significant_{contrast.name}", np.uint8
        )
        n_found = int(np.count_nonzero(found))
        z_threshold = float(np.abs(result.z_score[found]).min()) if n_found else None
        figure = _z_figure(
            plotting,
            masker.inverse_transform,
            result,
            found,
            z_threshold,
            contrast,
            background=mean,
            outline=outline,
            outline_label=outline_label,
            args=args,
        )
        figure_name = f"z_{contrast.name}.png"
        _save_figure(plt, figure, os.path.join(work, figure_name))
        results.append(
            {
                "name": contrast.name,
                "expression": contrast.expression,
                "type": result.stat_type,
                "df": [int(result.df_num), int(result.df_denom)],
                "fdr": args.fdr,
                "fdr_method": _FDR_METHOD,
                "n_significant": n_found,
                "z_threshold": z_threshold,
                "max_abs_z": float(np.abs(result.z_score).max()),
                "files": [
                    *(f"{prefix}_{contrast.name}.nii.gz" for prefix in maps),
                    f"significant_{contrast.name}.nii.gz",
                    figure_name,
                ],
            }
        )

    summary = {
        "skvoxel": __version__,
        "command": ["skvoxel", *args.argv],
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "data": {
            "image_shape": [int(n) for n in masker.mask_.shape],
            "n_volumes": int(Y.shape[0]),
            "n_voxels": int(masker.n_voxels_),
            "dtype": str(Y.dtype),
            "megabytes": Y.nbytes / 1e6,
            "affine": np.asarray(masker.affine_).tolist(),
        },
        "design": {
            "regressors": regressors,
            "shape": [int(n) for n in design.shape],
            "add_constant": bool(add_constant),
            "rank": int(model.rank_),
        },
        "fit": {
            "df_resid": int(model.df_resid_),
            "seconds": fit_seconds,
            "voxels_per_second": masker.n_voxels_ / max(fit_seconds, 1e-9),
        },
        "contrasts": results,
        "software": _versions(),
    }
    return summary, significant


def _z_figure(
    plotting,
    to_image,
    result,
    found,
    z_threshold,
    contrast,
    *,
    background,
    outline,
    outline_label,
    args,
):
    """The z map of a contrast: its significant voxels over the mean image.

    With no significant voxel, the whole z map, unthresholded.
    """
    if z_threshold is not None:
        shown = np.where(found, result.z_score, 0).astype(result.z_score.dtype)
        what = (
            f"{int(found.sum()):,} voxels significant, FDR q < {args.fdr:g}, "
            f"|z| >= {z_threshold:.2f}"
        )
    else:
        shown = result.z_score
        what = f"no voxel significant at FDR q < {args.fdr:g}; z unthresholded"
    return plotting.plot_map(
        to_image(shown),
        threshold=z_threshold,
        display=args.display,
        background=background,
        outline=outline,
        outline_label=outline_label,
        title=f"{result.stat_type} contrast {contrast.label}: z map\n{what}",
        colorbar_label=f"z ({result.stat_type} contrast {contrast.name})",
    )


# --- Helpers -----------------------------------------------------------------


def _import_extras():
    """nibabel and pandas (and check matplotlib), or MissingDependencyError."""
    missing = []
    modules = {}
    for name in ("nibabel", "pandas", "matplotlib"):
        try:
            modules[name] = __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        msg = (
            f"the command line needs {' and '.join(missing)}, not installed here: "
            f"{_CLI_EXTRA}"
        )
        raise MissingDependencyError(msg)
    return modules["nibabel"], modules["pandas"]


def _say(args, message):
    """A step, on stderr, with --verbose."""
    if args.verbose >= 2:
        print(f"skvoxel {args.command}: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _blame(what):
    """Turn the library's bad-input errors into InputError naming ``what``."""
    nib = sys.modules.get("nibabel")
    image_error = nib.filebasedimages.ImageFileError if nib else ValueError
    try:
        yield
    except (ValueError, TypeError, OSError, image_error) as error:
        raise InputError(f"{what}: {_first_line(error)}") from error


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _check_file(path, option):
    """InputError unless ``path``, given to ``option``, is an existing file."""
    if not os.path.exists(path):
        raise InputError(f"{option}: no such file: {path}")
    if os.path.isdir(path):
        raise InputError(f"{option}: {path} is a folder, not a file")


def _read_design(path, pd):
    """The design table as a float DataFrame, with named columns."""
    lower = path.lower()
    sep = "\t" if lower.endswith((".tsv", ".tsv.gz", ".tab")) else ","
    try:
        frame = pd.read_csv(path, sep=sep)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        msg = f"--design {path}: cannot be read as a table ({_first_line(error)})"
        raise InputError(msg) from error
    if len(frame.columns) and str(frame.columns[0]).startswith("Unnamed: 0"):
        frame = frame.iloc[:, 1:]  # row labels, as DataFrame.to_csv writes them
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        msg = (
            f"--design {path} has {frame.shape[0]} rows and {frame.shape[1]} "
            "regressor columns: it needs a header of regressor names and one row "
            "per volume."
        )
        raise InputError(msg)
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(
            values
        ):
            first = values[~values.map(_is_number)].iloc[0]
            msg = (
                f'--design {path}: column "{column}" is not numeric (it holds '
                f"{first!r}); a design holds one number per volume and regressor."
            )
            raise InputError(msg)
        missing = ~np.isfinite(values.to_numpy(dtype=np.float64))
        if missing.any():
            row = int(np.flatnonzero(missing)[0]) + 1
            msg = (
                f'--design {path}: column "{column}" has {int(missing.sum())} '
                f"missing or infinite value(s) (first in data row {row}); the "
                "design must be complete."
            )
            raise InputError(msg)
    frame = frame.astype(np.float64)
    frame.columns = [str(column) for column in frame.columns]
    try:
        _unique_file_names(list(frame.columns))
    except InputError as error:
        raise InputError(f"--design {path}: {error}") from None
    return frame


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _parse_contrasts(args, regressors):
    """The --contrast and --f-contrast options, checked against the regressors."""
    contrasts = []
    for kind, texts in (("t", args.contrast), ("F", args.f_contrast)):
        option = "--contrast" if kind == "t" else "--f-contrast"
        for text in texts:
            name, _, body = text.partition("=") if "=" in text else ("", "", text)
            name = name.strip()
            if kind == "t":
                expression = body.strip()
            else:
                expression = [row.strip() for row in _split_rows(body)]
            if name and not _NAME.fullmatch(name):
                msg = (
                    f'{option} "{text}": the name "{name}" names files, so it '
                    "may hold letters, digits, '_', '.' and '-' only."
                )
                raise InputError(msg)
            if not body.strip() or (kind == "F" and not all(expression)):
                raise InputError(f'{option} "{text}": the expression is empty.')
            try:
                contrast_matrix(expression, regressors, len(regressors))
            except (ValueError, TypeError) as error:
                raise InputError(f'{option} "{text}": {_first_line(error)}') from None
            name = name or _file_name(body) or f"contrast{len(contrasts) + 1}"
            contrasts.append(_Contrast(name, text, kind, expression))
    seen = {}
    for contrast in contrasts:
        if contrast.name in seen:
            msg = (
                f'{contrast.option} "{contrast.text}" and '
                f'{seen[contrast.name].option} "{seen[contrast.name].text}" are both '
                f'named "{contrast.name}"; name one as NAME=EXPR.'
            )
            raise InputError(msg)
        seen[contrast.name] = contrast
    return contrasts


def _split_rows(text):
    """Split an F contrast at the commas outside backticks."""
    rows, current, quoted = [], [], False
    for char in text:
        if char == "`":
            quoted = not quoted
        if char == "," and not quoted:
            rows.append("".join(current))
            current = []
        else:
            current.append(char)
    rows.append("".join(current))
    return rows


def _file_name(text):
    """A file-name-safe name for an expression or regressor name."""
    words = re.sub(
        r"\s*([-+*/])\s*", lambda match: f" {_OPERATOR_WORDS[match[1]]} ", text
    )
    return re.sub(r"[^A-Za-z0-9.]+", "_", words).strip("_.")


def _unique_file_names(regressors):
    """File names for the regressors' maps; InputError if two would be the same."""
    files = [_file_name(name) or f"regressor{i}" for i, name in enumerate(regressors)]
    for i, file in enumerate(files):
        if file in files[:i]:
            other = regressors[files.index(file)]
            msg = (
                f'the regressors "{other}" and "{regressors[i]}" would both be '
                f"written as beta_{file}.nii.gz; rename one in the design."
            )
            raise InputError(msg)
    return files


def _count_volumes(paths, nib):
    """Total number of volumes of the images, from their headers."""
    total = 0
    for path in paths:
        with _blame(f"--images {path}"):
            shape = nib.load(path).shape
        if len(shape) not in (3, 4):
            msg = (
                f"--images {path}: a {len(shape)}-D image of shape {shape}; images "
                "must be 4-D (x, y, z, time) or 3-D (one volume)."
            )
            raise InputError(msg)
        total += 1 if len(shape) == 3 else shape[3]
    return total


def _displayed_design(design, add_constant):
    """The design as fitted, with the constant --add-constant adds."""
    if not add_constant:
        return design
    return design.assign(**{"intercept (added)": 1.0})


def _save_figure(plt, figure, path):
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _truth_report(found, truth):
    """Sensitivity and false discovery proportion of ``found`` against ``truth``."""
    n_found = int(found.sum())
    true_positives = int((found & truth).sum())
    return {
        "n_active": int(truth.sum()),
        "n_found": n_found,
        "true_positives": true_positives,
        "false_positives": n_found - true_positives,
        "sensitivity": true_positives / int(truth.sum()),
        "false_discovery_proportion": (n_found - true_positives) / max(n_found, 1),
    }


def _versions():
    versions = {"python": platform.python_version(), "skvoxel": __version__}
    for name in ("numpy", "scipy", "scikit-learn", "nibabel", "pandas", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _write_summary(work, summary):
    files = sorted([*os.listdir(work), "summary.json"])
    summary["files"] = files
    with open(os.path.join(work, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")


def _print_report(heading, summary, out):
    """The short summary on stdout."""
    data, design, fit = summary["data"], summary["design"], summary["fit"]
    shape = " x ".join(str(n) for n in data["image_shape"])
    lines = [
        heading,
        f"  data      {shape} voxels x {data['n_volumes']} volumes; mask "
        f"{data['n_voxels']:,} voxels: Y is {data['n_volumes']} x "
        f"{data['n_voxels']:,} {data['dtype']} ({data['megabytes']:.1f} MB)",
        f"  design    {design['shape'][1]} regressors "
        f"({', '.join(design['regressors'])}"
        f"{', intercept' if design['add_constant'] else ''}), rank {design['rank']}, "
        f"df {fit['df_resid']}",
        f"  fit       {fit['seconds']:.3f} s, {fit['voxels_per_second']:,.0f} "
        "voxels per second",
    ]
    for contrast in summary["contrasts"]:
        threshold = contrast["z_threshold"]
        lines.append(
            f"  contrast  {contrast['type']} {contrast['name']}: "
            f"{contrast['n_significant']:,} voxels significant at FDR q < "
            f"{contrast['fdr']:g} (Benjamini-Hochberg)"
            + (f", |z| >= {threshold:.2f}" if threshold is not None else "")
        )
    truth = summary.get("truth")
    if truth is not None:
        lines.append(
            f"  truth     {truth['n_active']:,} active voxels: sensitivity "
            f"{truth['sensitivity']:.4f}, false discovery proportion "
            f"{truth['false_discovery_proportion']:.4f}"
        )
    figures = [name for name in summary["files"] if name.endswith(".png")]
    lines += [
        f"  total     {summary['seconds_total']:.1f} s",
        f"  wrote     {len(summary['files'])} files to {os.path.join(out, '')}: "
        "maps (.nii.gz), figures (.png), summary.json",
        f"  figures   {', '.join(os.path.join(out, name) for name in figures)}",
    ]
    print("\n".join(lines))


class _OutputFolder:
    """Write into a hidden temporary folder, moved to ``path`` when complete.

    ``path`` may not exist yet (its parents are made), be an empty folder,
    or, with ``overwrite``, a folder with content, replaced whole. On any
    error the temporary folder is removed and ``path`` is left as it was.
    """

    def __init__(self, path, *, overwrite):
        self.path = os.path.abspath(path)
        self.given = path
        if os.path.exists(self.path):
            if not os.path.isdir(self.path):
                raise InputError(f"--out {path} exists and is not a folder.")
            if os.listdir(self.path) and not overwrite:
                msg = (
                    f"--out {path} exists and is not empty; choose another "
                    "folder, or pass --overwrite to replace it."
                )
                raise InputError(msg)
        self.work = None

    def __enter__(self):
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
            self.work = tempfile.mkdtemp(
                prefix=f".{os.path.basename(self.path)}.", suffix=".partial", dir=parent
            )
        except OSError as error:
            msg = f"--out {self.given}: cannot write there ({_first_line(error)})"
            raise InputError(msg) from error
        # mkdtemp makes the folder private (0700); give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.work, 0o777 & ~umask)
        return self.work

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            return False
        try:
            self._move_into_place()
        except OSError as error:
            shutil.rmtree(self.work, ignore_errors=True)
            msg = f"--out {self.given}: cannot write there ({_first_line(error)})"
            raise InputError(msg) from error
        return False

    def _move_into_place(self):
        if not os.path.exists(self.path):
            os.rename(self.work, self.path)
            return
        parent = os.path.dirname(self.path)
        old = tempfile.mkdtemp(
            prefix=f".{os.path.basename(self.path)}.", suffix=".old", dir=parent
        )
        os.rmdir(old)
        os.rename(self.path, old)
        try:
            os.rename(self.work, self.path)
        except OSError:
            os.rename(old, self.path)
            raise
        shutil.rmtree(old, ignore_errors=True)
