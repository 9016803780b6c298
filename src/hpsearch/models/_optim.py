"""Optimizers and learning-rate schedules from a trial's decoded parameters.

Seed study 000 found that the learning-rate schedule decided convergence: with a constant rate
the validation loss never converged, with ``lr0 * decay_rate ** (step / decay_steps)`` it did.
So the schedule is searched like any other choice, next to the optimizer:

* ``exponential{decay_rate, decay_steps | decay_epochs}``: the seed's, ``lr0 * decay_rate **
  (step / decay_steps)``, smooth (Keras ``ExponentialDecay``). Give exactly one of
  ``decay_steps`` (optimizer updates per factor ``decay_rate``, the seed's form) or
  ``decay_epochs`` (a float > 0: epochs per factor, turned into ``decay_epochs *
  steps_per_epoch`` steps, not rounded). Why both: a step count means a different schedule on
  every training-set size and batch size. The seed's 200-5000 steps decayed over its tens of
  thousands of events, but on a public set of 35 training series (one or two batches an epoch)
  even 200 steps is beyond the whole training: no decay at all. Epochs say the same thing on
  every data set; steps stay for the seed's studies and spaces.
* ``cosine{alpha=0, warmup_epochs=0}``: cosine decay from ``lr0`` to ``alpha * lr0`` over the
  whole training (``epochs * steps_per_epoch`` steps), after an optional linear warm-up from 0
  over the first ``warmup_epochs`` (Loshchilov & Hutter 2017, arXiv:1608.03983, without
  restarts; warm-up after Goyal et al. 2017, arXiv:1706.02677).
* ``step{every_epochs, factor}``: multiply the rate by ``factor`` every ``every_epochs`` epochs,
  at the start of the epoch (Keras ``ExponentialDecay`` with ``staircase=True``, so it needs no
  list of boundaries and holds past the planned epochs).
* ``plateau{factor, patience, min_lr=0}``: a constant rate that Keras's ``ReduceLROnPlateau``
  callback multiplies by ``factor`` when ``val_loss`` has not improved for ``patience`` epochs.
  It is the one schedule that is a callback, returned for the caller to pass to ``fit``.
* ``constant{}`` (also when no schedule is given).

``step`` counts optimizer updates: update ``k`` (from 0) uses the rate at step ``k``, so epoch
``e`` (from 0) runs steps ``e * steps_per_epoch`` to ``(e + 1) * steps_per_epoch - 1``.

Optimizers: ``adam{learning_rate}``, ``adadelta{learning_rate, rho}``, ``sgd{learning_rate,
momentum, nesterov}``, ``rmsprop{learning_rate}``, each with Keras's own defaults for the
optional keys (``beta_1``, ``beta_2``, ``epsilon``, RMSprop's ``rho`` and ``momentum``).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpsearch.models._options import Param, choose

if TYPE_CHECKING:
    import keras

LEARNING_RATE = Param("learning_rate", "float", gt=0.0, doc="Initial learning rate lr0.")
EPSILON = Param("epsilon", "float", default=1e-7, gt=0.0, doc="Keras's default.")

#: Every optimizer by name, with its parameters.
OPTIMIZERS: Mapping[str, tuple[Param, ...]] = {
    "adam": (
        LEARNING_RATE,
        Param("beta_1", "float", default=0.9, ge=0.0, lt=1.0, doc="Keras's default."),
        Param("beta_2", "float", default=0.999, ge=0.0, lt=1.0, doc="Keras's default."),
        EPSILON,
    ),
    "adadelta": (
        LEARNING_RATE,
        Param("rho", "float", gt=0.0, lt=1.0, doc="Decay of the running averages."),
        EPSILON,
    ),
    "sgd": (
        LEARNING_RATE,
        Param("momentum", "float", ge=0.0, lt=1.0, doc="Momentum; 0 is plain SGD."),
        Param("nesterov", "bool", doc="Nesterov momentum."),
    ),
    "rmsprop": (
        LEARNING_RATE,
        Param("rho", "float", default=0.9, gt=0.0, lt=1.0, doc="Keras's default."),
        Param("momentum", "float", default=0.0, ge=0.0, lt=1.0, doc="Keras's default."),
        EPSILON,
    ),
}

#: Every learning-rate schedule by name, with its parameters (see the module docstring).
SCHEDULES: Mapping[str, tuple[Param, ...]] = {
    "constant": (),
    "exponential": (
        Param("decay_rate", "float", gt=0.0, doc="Factor per decay_steps steps."),
        Param(
            "decay_steps",
            "int",
            default=None,
            ge=1,
            doc="Optimizer steps per factor decay_rate; give this or decay_epochs.",
        ),
        Param(
            "decay_epochs",
            "float",
            default=None,
            gt=0.0,
            doc="Epochs per factor decay_rate (times steps_per_epoch); give this or decay_steps.",
        ),
    ),
    "cosine": (
        Param("alpha", "float", default=0.0, ge=0.0, le=1.0, doc="Final rate / lr0."),
        Param(
            "warmup_epochs",
            "float",
            default=0.0,
            ge=0.0,
            doc="Linear warm-up from 0 to lr0 over this many epochs; 0: none.",
        ),
    ),
    "step": (
        Param("every_epochs", "int", ge=1, doc="Epochs between drops."),
        Param("factor", "float", gt=0.0, le=1.0, doc="Multiplies the rate at each drop."),
    ),
    "plateau": (
        Param("factor", "float", gt=0.0, lt=1.0, doc="Multiplies the rate at each drop."),
        Param("patience", "int", ge=0, doc="Epochs without a lower val_loss before a drop."),
        Param("min_lr", "float", default=0.0, ge=0.0, doc="Floor of the rate; Keras's default."),
    ),
}

_OPTIMIZER_CLASSES = {"adam": "Adam", "adadelta": "Adadelta", "sgd": "SGD", "rmsprop": "RMSprop"}


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    return int(value)


def build_optimizer(
    optimizer: Mapping[str, Any],
    schedule: Mapping[str, Any] | None,
    *,
    steps_per_epoch: int,
    epochs: int,
) -> tuple[keras.optimizers.Optimizer, list[keras.callbacks.Callback]]:
    """Build the optimizer, on its schedule, that a trial's decoded parameters describe.

    Args:
        optimizer: ``{"name": adam|adadelta|sgd|rmsprop, "learning_rate": lr0, ...}``.
        schedule: ``{"name": exponential|cosine|step|plateau|constant, ...}`` (the trial's
            ``lr_schedule``), or None for a constant rate.
        steps_per_epoch: Optimizer updates per epoch (training batches), to turn epochs into
            steps.
        epochs: Epochs the trial trains for at most; ``cosine`` decays over all of them.

    Returns:
        The optimizer and the callbacks its schedule needs during ``fit`` (``plateau``'s
        ``ReduceLROnPlateau``; empty for every other schedule). Pass the callbacks to ``fit``:
        without them a ``plateau`` schedule is a constant rate.

    Raises:
        ValueError: An unknown name, a missing, unknown or invalid key, an ``exponential``
            schedule with neither or both of ``decay_steps`` and ``decay_epochs``, or a
            ``cosine`` warm-up as long as the training.
    """
    steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
    epochs = _positive_int("epochs", epochs)
    name, options = choose("optimizer", optimizer, OPTIMIZERS)
    schedule_options: dict[str, Any] = {}
    if schedule is None:
        schedule_name = "constant"
    else:
        schedule_name, schedule_options = choose("lr_schedule", schedule, SCHEDULES)
    learning_rate = options.pop("learning_rate")
    rate, callbacks = _learning_rate(
        schedule_name, schedule_options, learning_rate, steps_per_epoch, epochs
    )
    import keras

    optimizer_class = getattr(keras.optimizers, _OPTIMIZER_CLASSES[name])
    built: keras.optimizers.Optimizer = optimizer_class(learning_rate=rate, **options)
    return built, callbacks


def _decay_steps(options: dict[str, Any], steps_per_epoch: int) -> float:
    """``exponential``'s steps per factor, from exactly one of ``decay_steps``/``decay_epochs``.

    Raises:
        ValueError: Neither or both are given.
    """
    steps, epochs = options["decay_steps"], options["decay_epochs"]
    if (steps is None) == (epochs is None):
        got = "neither" if steps is None else f"both ({steps!r} and {epochs!r})"
        raise ValueError(
            "lr_schedule 'exponential': give exactly one of `decay_steps` (optimizer steps per "
            "factor decay_rate) or `decay_epochs` (epochs per factor, times steps_per_epoch), "
            f"got {got}"
        )
    if steps is not None:
        return int(steps)
    return float(epochs) * steps_per_epoch


def _learning_rate(
    name: str, options: dict[str, Any], lr0: float, steps_per_epoch: int, epochs: int
) -> tuple[float | keras.optimizers.schedules.LearningRateSchedule, list[Any]]:
    """The optimizer's ``learning_rate`` argument and the callbacks of schedule ``name``."""
    import keras

    schedules = keras.optimizers.schedules
    if name == "exponential":
        return schedules.ExponentialDecay(
            initial_learning_rate=lr0,
            decay_steps=_decay_steps(options, steps_per_epoch),
            decay_rate=options["decay_rate"],
        ), []
    if name == "step":
        return schedules.ExponentialDecay(
            initial_learning_rate=lr0,
            decay_steps=options["every_epochs"] * steps_per_epoch,
            decay_rate=options["factor"],
            staircase=True,
        ), []
    if name == "cosine":
        total = epochs * steps_per_epoch
        warmup = round(options["warmup_epochs"] * steps_per_epoch)
        if warmup >= total:
            raise ValueError(
                f"lr_schedule 'cosine': warmup_epochs {options['warmup_epochs']} leaves no step "
                f"to decay over in {epochs} epoch(s); choose warmup_epochs < {epochs}"
            )
        if warmup == 0:
            return schedules.CosineDecay(lr0, decay_steps=total, alpha=options["alpha"]), []
        return schedules.CosineDecay(
            0.0,
            decay_steps=total - warmup,
            alpha=options["alpha"],
            warmup_target=lr0,
            warmup_steps=warmup,
        ), []
    if name == "plateau":
        callback = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=options["factor"],
            patience=options["patience"],
            min_lr=options["min_lr"],
        )
        return lr0, [callback]
    return lr0, []
