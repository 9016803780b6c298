"""``hpsearch export``: a stored trial as a retraining config for ``hpsearch train``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from hpsearch.cli._common import stdout

EPILOG = """\
STUDY is a study file (its name and storage are read from it) or a study name with --storage
(default storage: sqlite:///results/hpsearch.db). Only COMPLETE trials are exported.

--best rules:
  max:METRIC, min:METRIC       the trial with the highest / lowest METRIC
  fastest-within:METRIC:TOL    the least train_seconds among trials within TOL (absolute)
                               of the best METRIC
  knee                         the Pareto trial closest to the ideal point, each objective
                               scaled to [0, 1] over the front
Without --trial, --best or --pareto a single-objective study exports its best trial.

examples:
  hpsearch export studies/xgamma_resnet.yaml --best knee -o results/knee.yaml
  hpsearch export xgamma_resnet --storage sqlite:///results/hpsearch.db --trial 9 -o t9.yaml
  hpsearch export studies/xgamma_resnet.yaml --best fastest-within:val_accuracy:0.01 -o f.yaml
  hpsearch export studies/xgamma_resnet.yaml --pareto -o results/front/   # trial-<n>.yaml each
  hpsearch train results/knee.yaml
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch export STUDY [--trial N | --best RULE | --pareto] -o FILE``."""
    parser = commands.add_parser(
        "export",
        help="write a stored trial as a retraining config (YAML)",
        description="Write a COMPLETE trial of a stored study as a retraining config: task, "
        "data (absolute paths), parameters, epochs, seed, input normalisation and where it "
        "came from. `hpsearch train CONFIG` trains it again and keeps the model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", help="study file, or a study name with --storage")
    parser.add_argument(
        "--storage", help="Optuna storage URL (default: the study file's, else the default)"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="N", help="export trial number N")
    which.add_argument("--best", metavar="RULE", help="export the trial RULE picks (see below)")
    which.add_argument(
        "--pareto",
        action="store_true",
        help="export every Pareto trial: -o is a directory, one trial-<n>.yaml per trial",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="file (directory for --pareto)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    """Export the chosen trial(s) and say where each config went."""
    from hpsearch.results.export import export_trials
    from hpsearch.results.storage import open_study, resolve_study

    ref = resolve_study(args.study, args.storage)
    stored = open_study(ref)
    written = export_trials(
        ref, stored, args.out, trial=args.trial, best=args.best, pareto=args.pareto
    )
    out = stdout()
    for path, config in written:
        values = ", ".join(
            f"{k} {v:.4g}" for k, v in config["provenance"]["objectives"].items() if v is not None
        )
        model = f" and its model {path.with_name(config['model'])}" if config.get("model") else ""
        out.print(
            f"trial {config['trial']} ({escape(config['provenance']['selected_by'])}; {values}) "
            f"-> {escape(str(path))}{escape(model)}",
            highlight=False,
        )
    return 0
