"""``hpsearch dashboard``: optuna-dashboard on a storage, with hpsearch's summary on each study.

optuna-dashboard is served as it is; hpsearch only writes, through optuna-dashboard's own API,
a note (:func:`optuna_dashboard.save_note`: counts, the Pareto set, the data) and its front
figure (:func:`optuna_dashboard.save_plotly_graph_object`) onto every study. They are written
when the command starts and again whenever a study's count of finished trials changes, which a
background thread checks every few seconds with one count query per study: cheap enough to
follow a running search live.
"""

from __future__ import annotations

import argparse
import errno
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from hpsearch.cli._common import load

if TYPE_CHECKING:
    import optuna

#: The ids of hpsearch's figures among a study's plotly graph objects (overwritten on refresh).
GRAPH_ID = "hpsearch-pareto"
CURVES_ID = "hpsearch-curves"
_LOCAL = ("127.0.0.1", "localhost", "::1")

_DESCRIPTION = """\
Serve optuna-dashboard on a storage (live: it reads storage on every page load), with
hpsearch's summary note (trial counts, Pareto set, data), its Pareto figure and its learning
curves attached to each study. They are refreshed at start and whenever a new trial finishes
(checked every --poll seconds). Binds 127.0.0.1 (this machine only) unless --host says
otherwise.
"""

_EPILOG = """\
examples:
  hpsearch dashboard studies/xgamma_resnet.yaml          # the study file's storage
  hpsearch dashboard --storage sqlite:///results/hpsearch.db --port 8081
  then open http://127.0.0.1:8080 (or ssh -L 8080:127.0.0.1:8080 HOST from a laptop)
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch dashboard [STUDY] [--storage URL] [--host H] [--port P]``."""
    dashboard = commands.add_parser(
        "dashboard",
        help="serve optuna-dashboard on the storage, with hpsearch's notes",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dashboard.add_argument("study", type=Path, nargs="?", help="study file (for its storage)")
    dashboard.add_argument(
        "--storage",
        help="Optuna storage URL (default: the study file's, else sqlite:///results/hpsearch.db)",
    )
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: %(default)s; 0.0.0.0 exposes it to the network)",
    )
    dashboard.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    dashboard.add_argument(
        "--poll",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often to check for new trials and refresh the notes; 0: only at start "
        "(default: %(default)s)",
    )
    dashboard.set_defaults(handler=handle)


def annotate(storage: optuna.storages.BaseStorage, name: str) -> None:
    """Write hpsearch's note, front and learning curves onto study ``name``, replacing earlier.

    The learning curves are drawn from each trial's per-epoch history, which hpsearch keeps in
    a system attribute that optuna-dashboard does not show (a user attribute would make every
    trial's row thousands of characters wide).
    """
    import warnings

    import optuna
    from optuna_dashboard import save_note, save_plotly_graph_object

    from hpsearch.report import StudyView
    from hpsearch.report_page import curves_only, front_figure, summary_markdown

    study = optuna.load_study(study_name=name, storage=storage)
    view = StudyView.read(study)
    figure = front_figure(view)
    figure.update_layout(template="plotly_white", legend={"orientation": "h", "y": -0.25})
    drawn = curves_only(view)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_note(study, summary_markdown(view))
        save_plotly_graph_object(study, figure, graph_object_id=GRAPH_ID)
        if "curves" in drawn:
            save_plotly_graph_object(study, drawn["curves"], graph_object_id=CURVES_ID)


def _signatures(storage: optuna.storages.BaseStorage) -> dict[str, tuple[int, int]]:
    """Each study's (all trials, finished trials): what changes when a trial lands."""
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return {
        s.study_name: (
            storage.get_n_trials(s._study_id),
            storage.get_n_trials(s._study_id, state=finished),
        )
        for s in storage.get_all_studies()
    }


class Annotator:
    """Keeps every study's note and figure current with the trials in storage.

    Args:
        storage: The storage the dashboard serves.
        console: Where a study that cannot be annotated is reported (and skipped).
    """

    def __init__(self, storage: optuna.storages.BaseStorage, console: Console) -> None:
        self._storage = storage
        self._console = console
        self._seen: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()

    def refresh(self) -> list[str]:
        """Annotate the studies whose finished-trial count changed; returns their names."""
        done = []
        for name, signature in _signatures(self._storage).items():
            if self._seen.get(name) == signature:
                continue
            try:
                annotate(self._storage, name)
            except Exception as exc:  # one odd study must not stop the dashboard
                self._console.print(
                    f"[yellow]warning:[/] no hpsearch note on study {escape(name)}: "
                    f"{type(exc).__name__}: {escape(str(exc))}"
                )
            self._seen[name] = signature
            done.append(name)
        return done

    def follow(self, seconds: float) -> threading.Thread:
        """Refresh every ``seconds`` in a daemon thread (it dies with the server)."""

        def loop() -> None:
            while not self._stop.wait(seconds):
                try:
                    self.refresh()
                except Exception as exc:  # storage busy or gone: try again next time
                    self._console.print(f"[yellow]warning:[/] notes not refreshed: {exc}")

        thread = threading.Thread(target=loop, name="hpsearch-notes", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the background refresh."""
        self._stop.set()


def _port_free(host: str, port: int) -> OSError | None:
    """None when ``host:port`` can be bound (as the server will, with address reuse)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def handle(args: argparse.Namespace, console: Console) -> int:
    """Annotate the studies, then serve optuna-dashboard until Ctrl-C."""
    from optuna_dashboard import run_server

    from hpsearch.results.storage import mask_url, open_existing_storage

    url = args.storage
    source = "--storage"
    if url is None and args.study is not None:
        study = load(argparse.Namespace(study=args.study, overrides=[], storage=None))
        url, source = study.spec.storage, str(args.study)
    if url is None:
        from hpsearch.spec import DEFAULT_STORAGE

        url = DEFAULT_STORAGE
    storage = open_existing_storage(url, source=source)
    problem = _port_free(args.host, args.port)
    if problem is not None:
        why = "is in use" if problem.errno == errno.EADDRINUSE else f"cannot be bound ({problem})"
        console.print(
            f"[bold red]error:[/] port {args.port} on {escape(args.host)} {why}; "
            "pick another with --port",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    if args.host not in _LOCAL:
        console.print(
            f"[yellow]warning:[/] binding {escape(args.host)}: anyone who can reach this machine "
            "on that address sees (and can edit notes of) every study in the storage; "
            "the default 127.0.0.1 with an ssh tunnel keeps it private"
        )
    annotator = Annotator(storage, console)
    annotated = annotator.refresh()
    console.print(f"hpsearch notes written on {len(annotated)} stud(y/ies)")
    if args.poll > 0:
        annotator.follow(args.poll)
    console.print(
        f"optuna-dashboard on http://{args.host}:{args.port} for {mask_url(url)} (Ctrl-C stops)"
    )
    try:
        run_server(storage, host=args.host, port=args.port)
    except OSError as exc:  # lost the port between the check and the bind
        console.print(f"[bold red]error:[/] port {args.port} on {escape(args.host)}: {exc}")
        return 2
    finally:
        annotator.stop()
    return 0
