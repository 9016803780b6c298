"""``hpsearch dashboard``: optuna-dashboard on a study's storage, live."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from hpsearch.cli._common import load


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch dashboard [STUDY]``."""
    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard on the storage")
    dashboard.add_argument("study", type=Path, nargs="?", help="study file (for its storage)")
    dashboard.add_argument("--storage", help="Optuna storage URL")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    """Serve optuna-dashboard on the study's (or the given) storage until Ctrl-C."""
    from optuna_dashboard import run_server

    from hpsearch.recorder import open_storage

    url = args.storage
    if url is None and args.study is not None:
        url = load(argparse.Namespace(study=args.study, overrides=[], storage=None)).spec.storage
    if url is None:
        from hpsearch.spec import DEFAULT_STORAGE

        url = DEFAULT_STORAGE
    storage = open_storage(url, source="--storage")
    console.print(f"optuna-dashboard on http://{args.host}:{args.port} for {url} (Ctrl-C stops)")
    run_server(storage, host=args.host, port=args.port)
    return 0
