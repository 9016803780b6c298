"""The run's live progress in a terminal: counts, running trials, best so far, time.

Kept apart from Ray: the driver's callback feeds it epochs and endings, and rich's ``Live``
redraws :meth:`Progress.__rich__` a few times a second from a thread of its own, so every
read here copies before it iterates. Shown only when stderr is a terminal; in a log or a
pipe the run prints one plain line per finished trial, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.text import Text

from hpsearch.lifecycle import Outcome


@dataclass
class Progress:
    """What the live display shows.

    Args:
        total: Trials this run may run (the budget left).
        objective: The first objective, whose best value is shown.
        maximize: Whether larger is better for it.
        metric: The scheduler's metric, shown per running trial.
        deadline: ``clock()`` value when the time budget ends (None: no time budget).
        dashboard: The command that opens the dashboard on this study.
        clock: Monotonic clock (injectable for tests).
    """

    total: int
    objective: str
    maximize: bool
    metric: str
    deadline: float | None = None
    dashboard: str = ""
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    running: dict[int, tuple[int, float | None]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0})
    best: tuple[int, float] | None = None
    #: A line shown above the rest (the acknowledgement of Ctrl-C, which the redraw of the
    #: display would otherwise wipe off the terminal).
    note: str = ""

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()

    def epoch(self, number: int, epoch: int, value: float | None) -> None:
        """A running trial reported an epoch."""
        self.running[number] = (epoch, value)

    def ended(self, number: int, outcome: Outcome) -> None:
        """A trial ended."""
        self.running.pop(number, None)
        self.counts[outcome.state] += 1
        if outcome.state == "COMPLETE" and outcome.values:
            value = outcome.values[0]
            better = self.best is None or (
                value > self.best[1] if self.maximize else value < self.best[1]
            )
            if better:
                self.best = (number, value)

    def lines(self) -> list[str]:
        """The display, as plain lines."""
        now = self.clock()
        elapsed = now - self.started
        finished = sum(self.counts.values())
        counts = ", ".join(f"{state} {n}" for state, n in dict(self.counts).items())
        head = f"{finished}/{self.total} finished ({counts}), elapsed {_duration(elapsed)}"
        if self.deadline is not None:
            head += f", time budget left {_duration(max(0.0, self.deadline - now))}"
        elif finished:
            left = elapsed / finished * max(0, self.total - finished)
            head += f", about {_duration(left)} left"
        out = [self.note, head] if self.note else [head]
        if self.best is not None:
            out.append(f"best {self.objective}: {self.best[1]:.4g} (trial {self.best[0]})")
        for number, (epoch, value) in sorted(dict(self.running).items()):
            shown = "" if value is None else f"  {self.metric} {value:.4g}"
            out.append(f"  running trial {number:>3}  epoch {epoch:>3}{shown}")
        if self.dashboard:
            out.append(f"watch it: {self.dashboard}")
        return out

    def __rich__(self) -> Text:
        """What rich's ``Live`` draws."""
        return Text("\n".join(self.lines()), style="dim")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
