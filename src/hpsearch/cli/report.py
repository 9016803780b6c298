"""``hpsearch report``: a stored study's tables in the terminal and its HTML report, offline.

Nothing runs and nothing is created in storage: the study is read through
:mod:`hpsearch.results.storage`, which refuses a storage that does not exist rather than
leaving an empty database behind a mistyped path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from hpsearch.cli._common import load, overrides_argument, stdout
from hpsearch.errors import InputError

_DESCRIPTION = """\
Print the stored study's trial counts, Pareto table and per-family table, and write one
self-contained HTML report (plotly.js included once: opens offline) with the front in the
objectives' plane (binomial error bars on accuracies, baseline and chance lines), the search
history, learning curves, parameter importances, parallel coordinates, the Pareto set with its
hyperparameters, trial counts by state and stop reason, and the study's provenance. Each figure
is also written as PNG and PDF (needs kaleido and a Chrome/Chromium; BROWSER_PATH picks one).
Works on interrupted studies, and says so when no trial is complete yet.
"""

_EPILOG = """\
examples:
  hpsearch report studies/xgamma_resnet.yaml
      -> results/xgamma_resnet/report.html, pareto.html, figures/*.png|pdf
  hpsearch report xgamma_resnet --storage sqlite:///results/hpsearch.db --out /tmp/rep
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch report STUDY [--out DIR]``."""
    report = commands.add_parser(
        "report",
        help="print the Pareto table and write the HTML report",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "study",
        help="study file (e.g. studies/xgamma_resnet.yaml) or a study name in --storage",
    )
    overrides_argument(
        report, "override a field of the study file, e.g. --set name=other (repeatable)"
    )
    report.add_argument(
        "--storage",
        help="Optuna storage URL (default: the study file's, or sqlite:///results/hpsearch.db "
        "for a study name)",
    )
    report.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder of report.html, pareto.html and figures/ (default: RESULTS_DIR/STUDY_NAME, "
        "i.e. results/STUDY_NAME)",
    )
    report.add_argument(
        "--no-images",
        action="store_true",
        help="skip the PNG/PDF figures (they take a headless browser about 2 s each)",
    )
    report.set_defaults(handler=handle)


def _is_study_file(arg: str) -> bool:
    path = Path(arg)
    return path.suffix in (".yaml", ".yml") or path.is_file()


def handle(args: argparse.Namespace, console: Console) -> int:
    """Print the stored study's report, write its HTML page and figures."""
    from hpsearch.report import StudyView, print_report
    from hpsearch.report_page import write_report
    from hpsearch.results.storage import StudyRef, open_study
    from hpsearch.spec import DEFAULT_STORAGE

    if _is_study_file(args.study):
        study = load(
            argparse.Namespace(
                study=Path(args.study), overrides=args.overrides, storage=args.storage
            )
        )
        ref = StudyRef(study.spec.name, study.spec.storage, study, str(args.study))
        results = study.spec.results_dir
    else:
        if args.overrides:
            raise InputError(
                "--set",
                "",
                "--set changes a study file; STUDY names a stored study",
                "give the study file instead of its name, or drop --set",
            )
        ref = StudyRef(args.study, args.storage or DEFAULT_STORAGE, None, "STUDY")
        results = Path("results")
    try:
        stored = open_study(ref)
    except InputError as exc:
        if ref.name in exc.problem:
            raise
        raise InputError(
            exc.source, exc.key, f"cannot report study {ref.name!r}: {exc.problem}", exc.fix
        ) from exc
    out = args.out if args.out is not None else results / ref.name
    view = StudyView.read(stored)
    print_report(view, stdout(), out / "pareto.html")
    files = write_report(view, out, images=not args.no_images)
    console.print(f"Report: {files.html.resolve()} ({files.html.stat().st_size / 1e6:.1f} MB)")
    if files.images:
        console.print(f"Figures: {len(files.images)} files in {(out / 'figures').resolve()}")
    elif files.image_error:
        console.print(f"[yellow]No PNG/PDF figures:[/] {files.image_error}")
    return 0
