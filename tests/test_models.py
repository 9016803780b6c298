"""The 1-D ResNet builder: depth maps to the seed's ResNet-N, and it learns a trivial task."""

from __future__ import annotations

import numpy as np
import pytest

from hpsearch.models import build_resnet1d
from hpsearch.models.resnet1d import block_kernels


def _convs(model: object) -> list[object]:
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("blocks", "name"), [(3, "resnet10"), (5, "resnet16")])
def test_depth_is_the_seeds_resnet_n(blocks: int, name: str) -> None:
    model = build_resnet1d((64, 1), 2, blocks=blocks, filters=8, kernel_size=8)
    assert model.name == name
    kernels = [c.kernel_size[0] for c in _convs(model) if c.kernel_size[0] != 1]  # type: ignore[attr-defined]
    assert kernels == list(block_kernels(8)) * blocks == [8, 5, 3] * blocks
    assert model.output_shape == (None, 2)


def test_norm_choices_and_bad_norm() -> None:
    import keras

    group = build_resnet1d((32, 1), 2, blocks=1, filters=8, kernel_size=3, norm="group")
    batch = build_resnet1d((32, 1), 2, blocks=1, filters=8, kernel_size=3, norm="batch")
    assert any(isinstance(layer, keras.layers.GroupNormalization) for layer in group.layers)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in batch.layers)
    with pytest.raises(ValueError, match="norm must be"):
        build_resnet1d((32, 1), 2, blocks=1, filters=8, kernel_size=3, norm="instance")  # type: ignore[arg-type]


def test_learns_a_step_vs_a_ramp() -> None:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    t = np.arange(64)
    step = (t >= 20).astype(np.float32)
    ramp = np.clip((t - 20) / 30, 0, 1).astype(np.float32)
    y = rng.integers(0, 2, 256)
    x = np.where(y[:, None] == 0, step, ramp) + rng.normal(0, 0.1, (256, 64))
    model = build_resnet1d((64, 1), 2, blocks=1, filters=8, kernel_size=5)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x[..., None], y, epochs=5, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x[..., None], y, verbose=0)
    assert accuracy > 0.9
