"""Optimizers and learning-rate schedules: the rate at chosen steps, classes and hyperparameters."""

from __future__ import annotations

from typing import Any

import pytest

from hpsearch.models import build_optimizer

LR0 = 0.01
ADAM = {"name": "adam", "learning_rate": LR0}


def rate_at(optimizer: Any, step: int) -> float:
    """The learning rate the optimizer applies at update ``step`` (counted from 0)."""
    optimizer.iterations.assign(step)
    return float(optimizer.learning_rate)


def test_exponential_is_the_seeds_decay() -> None:
    schedule = {"name": "exponential", "decay_rate": 0.9, "decay_steps": 500}
    optimizer, callbacks = build_optimizer(ADAM, schedule, steps_per_epoch=10, epochs=3)
    assert callbacks == []
    assert rate_at(optimizer, 0) == pytest.approx(LR0)
    assert rate_at(optimizer, 500) == pytest.approx(LR0 * 0.9)
    assert rate_at(optimizer, 1000) == pytest.approx(LR0 * 0.81)
    assert rate_at(optimizer, 250) == pytest.approx(LR0 * 0.9**0.5)  # smooth, not stepped


@pytest.mark.parametrize(("decay_epochs", "steps_per_epoch"), [(5, 10), (2.5, 4), (0.5, 3)])
def test_exponential_decay_epochs_are_epochs_times_steps_per_epoch(
    decay_epochs: float, steps_per_epoch: int
) -> None:
    schedule = {"name": "exponential", "decay_rate": 0.5, "decay_epochs": decay_epochs}
    optimizer, callbacks = build_optimizer(
        ADAM, schedule, steps_per_epoch=steps_per_epoch, epochs=3
    )
    assert callbacks == []
    steps = decay_epochs * steps_per_epoch  # not rounded: 0.5 epoch of 3 steps is 1.5 steps
    assert rate_at(optimizer, 0) == pytest.approx(LR0)
    for step in (1, 3, 10, 30):
        assert rate_at(optimizer, step) == pytest.approx(LR0 * 0.5 ** (step / steps))


def test_exponential_in_epochs_decays_on_a_tiny_training_set() -> None:
    """35 training series at batch 32 are 2 steps an epoch: decay_steps 200 never decays in
    50 epochs, decay_epochs 10 halves the rate five times (``decay_rate`` 0.5)."""
    by_steps = {"name": "exponential", "decay_rate": 0.5, "decay_steps": 200}
    by_epochs = {"name": "exponential", "decay_rate": 0.5, "decay_epochs": 10}
    last_step = 50 * 2 - 1
    optimizer, _ = build_optimizer(ADAM, by_steps, steps_per_epoch=2, epochs=50)
    assert rate_at(optimizer, last_step) > 0.7 * LR0
    optimizer, _ = build_optimizer(ADAM, by_epochs, steps_per_epoch=2, epochs=50)
    assert rate_at(optimizer, last_step) == pytest.approx(LR0 * 0.5 ** (last_step / 20))
    assert rate_at(optimizer, last_step) < 0.05 * LR0


@pytest.mark.parametrize(
    ("extra", "got"),
    [({}, "got neither"), ({"decay_steps": 100, "decay_epochs": 2.0}, r"got both \(100 and 2.0\)")],
)
def test_exponential_takes_exactly_one_of_decay_steps_and_decay_epochs(
    extra: dict[str, Any], got: str
) -> None:
    schedule = {"name": "exponential", "decay_rate": 0.9, **extra}
    message = (
        r"lr_schedule 'exponential': give exactly one of `decay_steps` .* or `decay_epochs` .*"
        + got
    )
    with pytest.raises(ValueError, match=message):
        build_optimizer(ADAM, schedule, steps_per_epoch=10, epochs=3)


def test_step_drops_by_factor_every_k_epochs() -> None:
    schedule = {"name": "step", "every_epochs": 2, "factor": 0.5}
    optimizer, callbacks = build_optimizer(ADAM, schedule, steps_per_epoch=10, epochs=6)
    assert callbacks == []
    # Epochs 0-1 are steps 0-19, epochs 2-3 steps 20-39, ...
    rates = [rate_at(optimizer, step) for step in (0, 19, 20, 39, 40, 59)]
    assert rates == pytest.approx([LR0, LR0, LR0 / 2, LR0 / 2, LR0 / 4, LR0 / 4])


def test_cosine_decays_to_alpha_over_the_whole_training() -> None:
    schedule = {"name": "cosine", "alpha": 0.1}
    optimizer, _ = build_optimizer(ADAM, schedule, steps_per_epoch=10, epochs=5)
    assert rate_at(optimizer, 0) == pytest.approx(LR0)
    assert rate_at(optimizer, 25) == pytest.approx(LR0 * (0.1 + 0.9 * 0.5))
    assert rate_at(optimizer, 50) == pytest.approx(0.1 * LR0)


def test_cosine_warms_up_linearly_then_decays() -> None:
    schedule = {"name": "cosine", "warmup_epochs": 1}
    optimizer, _ = build_optimizer(ADAM, schedule, steps_per_epoch=10, epochs=5)
    rates = [rate_at(optimizer, step) for step in (0, 5, 10, 30, 50)]
    assert rates == pytest.approx([0.0, LR0 / 2, LR0, LR0 / 2, 0.0], abs=1e-9)
    with pytest.raises(ValueError, match="choose warmup_epochs < 5"):
        build_optimizer(ADAM, {**schedule, "warmup_epochs": 5}, steps_per_epoch=10, epochs=5)


@pytest.mark.parametrize("schedule", [None, {"name": "constant"}])
def test_constant_is_constant(schedule: dict[str, Any] | None) -> None:
    optimizer, callbacks = build_optimizer(ADAM, schedule, steps_per_epoch=10, epochs=3)
    assert callbacks == []
    assert rate_at(optimizer, 0) == rate_at(optimizer, 10_000) == pytest.approx(LR0)


def test_plateau_is_a_reduce_on_plateau_callback_that_lowers_the_rate() -> None:
    import keras

    schedule = {"name": "plateau", "factor": 0.5, "patience": 1, "min_lr": 1e-4}
    optimizer, callbacks = build_optimizer(ADAM, schedule, steps_per_epoch=10, epochs=3)
    (callback,) = callbacks
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.monitor, callback.factor, callback.patience, callback.min_lr) == (
        "val_loss",
        0.5,
        1,
        1e-4,
    )
    assert rate_at(optimizer, 0) == rate_at(optimizer, 1000) == pytest.approx(LR0)
    # The callback can set the rate: it is a plain value, not a schedule.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_loss": 1.0})
    assert float(optimizer.learning_rate) == pytest.approx(LR0)
    callback.on_epoch_end(1, {"val_loss": 1.0})  # no improvement for `patience` epochs
    assert float(optimizer.learning_rate) == pytest.approx(LR0 / 2)


def test_plateau_min_lr_defaults_to_zero() -> None:
    schedule = {"name": "plateau", "factor": 0.2, "patience": 3}
    _, (callback,) = build_optimizer(ADAM, schedule, steps_per_epoch=1, epochs=1)
    assert callback.min_lr == 0.0


@pytest.mark.parametrize(
    ("optimizer", "cls", "attributes"),
    [
        ({"name": "adam", "learning_rate": 3e-3}, "Adam", {"beta_1": 0.9}),
        (
            {"name": "adam", "learning_rate": 3e-3, "beta_1": 0.8, "beta_2": 0.99},
            "Adam",
            {"beta_1": 0.8, "beta_2": 0.99},
        ),
        ({"name": "adadelta", "learning_rate": 1.0, "rho": 0.9}, "Adadelta", {"rho": 0.9}),
        (
            {"name": "sgd", "learning_rate": 0.1, "momentum": 0.7, "nesterov": True},
            "SGD",
            {"momentum": 0.7, "nesterov": True},
        ),
        (
            {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0, "nesterov": False},
            "SGD",
            {"momentum": 0.0, "nesterov": False},
        ),
        ({"name": "rmsprop", "learning_rate": 1e-3}, "RMSprop", {"rho": 0.9}),
    ],
)
def test_each_optimizer_has_its_class_and_hyperparameters(
    optimizer: dict[str, Any], cls: str, attributes: dict[str, Any]
) -> None:
    import keras

    built, _ = build_optimizer(optimizer, None, steps_per_epoch=5, epochs=2)
    assert type(built) is getattr(keras.optimizers, cls)
    assert float(built.learning_rate) == pytest.approx(optimizer["learning_rate"])
    for name, value in attributes.items():
        assert getattr(built, name) == pytest.approx(value)


@pytest.mark.parametrize(
    ("optimizer", "schedule", "message"),
    [
        (
            {"name": "adamw", "learning_rate": 1e-3},
            None,
            r"`optimizer.name` must be one of "
            r"adadelta, adam, rmsprop, sgd, got 'adamw'",
        ),
        ({"name": "adam"}, None, r"optimizer 'adam': missing key\(s\) \['learning_rate'\]"),
        (
            {"name": "sgd", "learning_rate": 0.1, "nesterov": True},
            None,
            r"optimizer 'sgd': missing key\(s\) \['momentum'\]; it takes learning_rate, "
            r"momentum, nesterov",
        ),
        ({**ADAM, "decay": 0.1}, None, r"optimizer 'adam': unknown key\(s\) \['decay'\]"),
        ({**ADAM, "learning_rate": 0}, None, r"`learning_rate` must be a number > 0, got 0"),
        (
            {"name": "adadelta", "learning_rate": 1.0, "rho": 1.5},
            None,
            r"`rho` must be a number > 0 and < 1",
        ),
        (
            ADAM,
            {"name": "linear"},
            r"`lr_schedule.name` must be one of constant, cosine, "
            r"exponential, plateau, step",
        ),
        (ADAM, {"name": "exponential", "decay_steps": 9}, r"missing key\(s\) \['decay_rate'\]"),
        (
            ADAM,
            {"name": "exponential", "decay_rate": 0.9, "decay_epochs": 0},
            r"`decay_epochs` must be a number > 0, got 0",
        ),
        (
            ADAM,
            {"name": "exponential", "decay_rate": 0.9, "decay_steps": 2.5},
            r"`decay_steps` must be an integer >= 1, got 2.5",
        ),
        (ADAM, {"name": "step", "every_epochs": 2, "factor": 2.0}, r"`factor` must be a number"),
        (ADAM, {"name": "constant", "rate": 1}, r"lr_schedule 'constant': unknown key"),
    ],
)
def test_wrong_parameters_say_which_key_and_what_is_allowed(
    optimizer: dict[str, Any], schedule: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_optimizer(optimizer, schedule, steps_per_epoch=10, epochs=3)


@pytest.mark.parametrize(("steps", "epochs"), [(0, 3), (10, 0), (10.5, 3)])
def test_steps_and_epochs_must_be_positive_integers(steps: Any, epochs: Any) -> None:
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        build_optimizer(ADAM, None, steps_per_epoch=steps, epochs=epochs)
