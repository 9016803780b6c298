"""``hpsearch train``: retrain an exported (or hand-written) config and keep the model."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from hpsearch.cli._common import stdout

EPILOG = """\
The config is what `hpsearch export` writes (or the same by hand: task, data, params, epochs
and seed are required). The data is read and split as the study read it, and the task's own
objective trains the model with the config's parameters, seed and input normalisation.

Written into --out (default results/<study>/trial-<n>/):
  model.keras    the trained model (keras.models.load_model reads it)
  history.json   every epoch's report
  metrics.json   the test metrics, beside the searched trial's
  config.yaml    the config as trained

examples:
  hpsearch export studies/xgamma_resnet.yaml --best knee -o results/knee.yaml
  hpsearch train results/knee.yaml
  hpsearch train results/knee.yaml --epochs 50 --out results/knee-50/
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch train CONFIG [--epochs E] [--out DIR]``."""
    parser = commands.add_parser(
        "train",
        help="retrain an exported config and save the model",
        description="Retrain the model a config describes (see `hpsearch export`) on the "
        "study's data and split, and save the model, its history and its test metrics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, help="retraining config (YAML)")
    parser.add_argument("--epochs", type=int, help="train this many epochs (default: the config's)")
    parser.add_argument(
        "--out", type=Path, help="output directory (default: results/<study>/trial-<n>/)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    """Retrain, then print the test metrics next to the searched trial's."""
    from hpsearch.errors import InputError
    from hpsearch.results.retrain import default_out, load_config, retrain

    if args.epochs is not None and args.epochs < 1:
        raise InputError("--epochs", str(args.epochs), "must be >= 1", "give e.g. --epochs 8")
    config = load_config(args.config)
    out = args.out or default_out(config, args.config)
    metrics = retrain(config, args.config, out, console, epochs=args.epochs)
    searched = metrics["searched"]
    result = stdout()
    for name, value in sorted(metrics["test"].items()):
        before = searched.get(name)
        note = f" (searched trial: {before:.6g})" if isinstance(before, int | float) else ""
        result.print(f"{name} {value:.6g}{note}", highlight=False)
    result.print(f"Saved model, history and metrics in {escape(str(out))}", highlight=False)
    return 0
