"""Model families: every family builds for both heads and every rank it reads, depth,
downsampling, regularisation.

Tiny widths throughout: the wiring is under test, not what the networks learn.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from hpsearch.models import FAMILIES, Head, build_model, build_resnet1d, families_for_rank

#: One small, valid parameter set per family.
SMALL: dict[str, dict[str, Any]] = {
    "resnet": {"name": "resnet", "blocks": 1, "filters": 4, "kernel_size": 3},
    "cnn": {"name": "cnn", "filters": 4, "kernel_size": 3, "pooling": "max"},
    "lstm": {"name": "lstm", "units": 4, "layers": 1, "bidirectional": False, "downsample": 8},
    "lstm_fcn": {"name": "lstm_fcn", "lstm_units": 4, "filters": 4, "kernel_size": 3},
    "counter_grid": {"name": "counter_grid", "time_filters": 4, "grid_filters": 4},
}

#: A small event of each rank: a pulse, a count map, a detector grid (N, N, T, 2) of waveforms.
SHAPES: dict[int, tuple[int, ...]] = {2: (64, 1), 3: (12, 12, 1), 4: (7, 7, 32, 2)}

#: Every (family, rank) pair a family reads.
FAMILY_RANKS = [(name, rank) for name in sorted(SMALL) for rank in sorted(FAMILIES[name].ranks)]


def layers_of(model: Any, kind: str) -> list[Any]:
    """Layers of class ``keras.layers.<kind>``, unwrapping Bidirectional."""
    import keras

    cls = getattr(keras.layers, kind)
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [w for w in (layer.forward_layer, layer.backward_layer) if isinstance(w, cls)]
        elif isinstance(layer, cls):
            found.append(layer)
    return found


def test_the_families_of_seeds_000_and_002_are_registered() -> None:
    assert set(FAMILIES) == {"resnet", "cnn", "lstm", "lstm_fcn", "counter_grid"}
    assert set(SMALL) == set(FAMILIES)
    for name, family in FAMILIES.items():
        assert family.name == name and family.description
        assert "downsample" in {p.name for p in family.params}


@pytest.mark.parametrize("family", sorted(n for n in SMALL if 2 in FAMILIES[n].ranks))
@pytest.mark.parametrize(
    ("head", "activation"),
    [(Head("classification", 3), "softmax"), (Head("regression", 2), "linear")],
)
def test_every_family_builds_both_heads_and_runs(family: str, head: Head, activation: str) -> None:
    model = build_model(SMALL[family], input_shape=(256, 1), head=head)
    last = model.layers[-1]
    assert last.get_config()["activation"] == activation
    assert model.output_shape == (None, head.units)
    x = np.random.default_rng(0).normal(size=(2, 256, 1)).astype(np.float32)
    y = np.asarray(model(x))
    assert y.shape == (2, head.units)
    assert np.all(np.isfinite(y))
    if head.kind == "classification":
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(("blocks", "depth"), [(3, 10), (5, 16)])
def test_resnet_blocks_give_the_seeds_resnet_10_and_16(blocks: int, depth: int) -> None:
    params = {**SMALL["resnet"], "blocks": blocks}
    model = build_model(params, input_shape=(64, 1), head=Head("classification", 2))
    assert model.name == f"resnet{depth}"
    # Weight layers along the main path: 3 convolutions per block (1x1 shortcuts aside) + head.
    convs = [c for c in layers_of(model, "Conv1D") if c.kernel_size != (1,)]
    assert len(convs) + len(layers_of(model, "Dense")) == depth
    assert len(layers_of(model, "Add")) == blocks


@pytest.mark.parametrize("family", ["resnet", "cnn"])
def test_conv_families_read_images_with_conv2d(family: str) -> None:
    params = {**SMALL[family], "downsample": 2}
    model = build_model(params, input_shape=(32, 32, 1), head=Head("regression", 1))
    assert layers_of(model, "Conv2D") and not layers_of(model, "Conv1D")
    assert layers_of(model, "AveragePooling2D")[0].output.shape[1:3] == (16, 16)
    y = np.asarray(model(np.zeros((2, 32, 32, 1), np.float32)))
    assert y.shape == (2, 1)


@pytest.mark.parametrize("family", ["lstm", "lstm_fcn"])
def test_recurrent_families_refuse_images(family: str) -> None:
    expected = rf"model '{family}' accepts sequences.*\(32, 32, 1\).*rank: resnet, cnn"
    with pytest.raises(ValueError, match=expected):
        build_model(SMALL[family], input_shape=(32, 32, 1), head=Head("classification", 2))


@pytest.mark.parametrize("shape", [(256,), (2, 4, 4, 4, 1), (0, 1), (256.0, 1)])
def test_other_shapes_are_refused(shape: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="model 'resnet'"):
        build_model(SMALL["resnet"], input_shape=shape, head=Head("classification", 2))


def test_a_rank_no_family_reads_lists_the_ranks_families_read() -> None:
    with pytest.raises(ValueError, match=r"no family reads rank 5; families read rank 2: seq"):
        build_model(SMALL["cnn"], input_shape=(2, 4, 4, 4, 1), head=Head("regression", 1))


def test_families_for_rank() -> None:
    assert families_for_rank(2) == ["resnet", "cnn", "lstm", "lstm_fcn"]
    assert families_for_rank(3) == ["resnet", "cnn"]
    assert families_for_rank(4) == ["resnet", "cnn", "counter_grid"]
    assert families_for_rank(np.int64(4)) == ["resnet", "cnn", "counter_grid"]
    assert families_for_rank(1) == families_for_rank(5) == []
    for rank in (2, 3, 4):
        assert all(rank in FAMILIES[name].ranks for name in families_for_rank(rank))
    with pytest.raises(ValueError, match="rank must be an integer"):
        families_for_rank(4.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank must be an integer"):
        families_for_rank(True)


@pytest.mark.parametrize(("family", "rank"), FAMILY_RANKS)
@pytest.mark.parametrize("head", [Head("classification", 3), Head("regression", 2)])
def test_every_family_builds_for_every_rank_it_reads(family: str, rank: int, head: Head) -> None:
    shape = SHAPES[rank]
    params = {**SMALL[family], "downsample": 2 if rank < 4 else 4}
    model = build_model(params, input_shape=shape, head=head)
    assert model.output_shape == (None, head.units)
    if family != "lstm":
        conv = f"Conv{rank - 1}D"
        assert layers_of(model, conv), f"{family} on rank {rank} has no {conv}"
    x = np.random.default_rng(1).normal(size=(3, *shape)).astype(np.float32)
    y = np.asarray(model.predict(x, verbose=0))
    assert y.shape == (3, head.units)
    assert np.all(np.isfinite(y))
    if head.kind == "classification":
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    else:  # k linear outputs: any sign, not squashed to probabilities
        assert model.layers[-1].get_config()["activation"] == "linear"


def test_a_regression_head_gives_k_linear_outputs_and_trains_on_a_detector_grid() -> None:
    import keras

    params = {**SMALL["cnn"], "downsample": 2}
    model = build_model(params, input_shape=(6, 6, 16, 2), head=Head("regression", 3))
    dense = model.layers[-1]
    assert isinstance(dense, keras.layers.Dense) and dense.units == 3
    kernel, _ = dense.get_weights()
    dense.set_weights([kernel * 0.0, np.array([-5.0, 0.0, 5.0], np.float32)])
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 6, 6, 16, 2)).astype(np.float32)
    y = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(y, np.tile([-5.0, 0.0, 5.0], (16, 1)), atol=1e-6)  # no squashing
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    targets = rng.normal(size=(16, 3)).astype(np.float32)
    history = model.fit(x, targets, epochs=3, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("family", ["lstm", "lstm_fcn"])
def test_recurrent_families_refuse_volumes_naming_the_conv_families(family: str) -> None:
    expected = (
        rf"model '{family}' accepts sequences \(length, channels\), got input_shape "
        r"\(7, 7, 32, 2\); families for this rank: resnet, cnn"
    )
    with pytest.raises(ValueError, match=expected):
        build_model(SMALL[family], input_shape=(7, 7, 32, 2), head=Head("regression", 1))


@pytest.mark.parametrize("family", ["resnet", "cnn"])
def test_volumes_downsample_only_their_longest_axis(family: str) -> None:
    params = {**SMALL[family], "downsample": 4}
    model = build_model(params, input_shape=(7, 7, 128, 2), head=Head("regression", 1))
    (pool,) = layers_of(model, "AveragePooling3D")[:1]
    assert pool.pool_size == (1, 1, 4)
    assert tuple(pool.output.shape[1:]) == (7, 7, 32, 2)
    # The longest axis need not be the last; of equally long axes the last is pooled.
    model = build_model(params, input_shape=(32, 6, 6, 1), head=Head("regression", 1))
    assert layers_of(model, "AveragePooling3D")[0].pool_size == (4, 1, 1)
    model = build_model(params, input_shape=(8, 8, 8, 1), head=Head("regression", 1))
    assert layers_of(model, "AveragePooling3D")[0].pool_size == (1, 1, 4)


def test_volume_downsample_beyond_the_longest_axis_is_refused() -> None:
    params = {**SMALL["resnet"], "downsample": 64}
    with pytest.raises(ValueError, match=r"downsample 64 exceeds the input's longest axis .*32"):
        build_model(params, input_shape=(7, 7, 32, 2), head=Head("regression", 1))
    # A grid narrower than downsample is fine: its detector axes are not pooled.
    params["downsample"] = 16
    build_model(params, input_shape=(7, 7, 32, 2), head=Head("regression", 1))


def test_volume_kernels_are_clipped_to_each_axis() -> None:
    params = {**SMALL["resnet"], "kernel_size": 8}
    model = build_model(params, input_shape=(7, 7, 64, 2), head=Head("regression", 1))
    kernels = [c.kernel_size for c in layers_of(model, "Conv3D") if c.kernel_size != (1, 1, 1)]
    assert kernels == [(7, 7, 8), (5, 5, 5), (3, 3, 3)]  # Wang's 8/5/3, clipped to the grid
    # The plain CNN's pooling shrinks the grid, and each later kernel is clipped to what is left.
    params = {**SMALL["cnn"], "layers": 4, "kernel_size": 8, "pooling": "average"}
    model = build_model(params, input_shape=(7, 7, 64, 2), head=Head("regression", 1))
    convs = layers_of(model, "Conv3D")
    assert [c.kernel_size for c in convs] == [(7, 7, 8), (4, 4, 5), (2, 2, 3), (1, 1, 3)]
    assert [tuple(c.output.shape[1:4]) for c in convs] == [
        (7, 7, 64),
        (4, 4, 32),
        (2, 2, 16),
        (1, 1, 8),
    ]


def test_kernels_longer_than_a_sequence_are_clipped_and_others_unchanged() -> None:
    params = {**SMALL["cnn"], "kernel_size": 8, "pooling": "none", "downsample": 8}
    model = build_model(params, input_shape=(48, 1), head=Head("regression", 1))
    assert [c.kernel_size for c in layers_of(model, "Conv1D")] == [(6,), (5,), (3,)]
    model = build_model(
        {**params, "downsample": 1}, input_shape=(48, 1), head=Head("regression", 1)
    )
    assert [c.kernel_size for c in layers_of(model, "Conv1D")] == [(8,), (5,), (3,)]


def test_downsample_beyond_the_input_is_refused() -> None:
    params = {**SMALL["cnn"], "downsample": 64}
    with pytest.raises(ValueError, match="downsample 64 exceeds the input's axis 0 of 32"):
        build_model(params, input_shape=(32, 1), head=Head("classification", 2))
    with pytest.raises(ValueError, match=r"downsample 8 exceeds the input's axis 1 of 4 .*<= 4"):
        build_model(params | {"downsample": 8}, input_shape=(16, 4, 1), head=Head("regression", 1))


@pytest.mark.parametrize(
    ("family", "extra", "lstm_input"),
    [
        ("lstm", {"downsample": 4}, (None, 64, 1)),
        ("lstm", {"downsample": 1}, (None, 256, 1)),
        ("lstm_fcn", {"downsample": 4}, (None, 1, 64)),  # dimension shuffle: 64 features
        ("lstm_fcn", {"downsample": 4, "dimension_shuffle": False}, (None, 64, 1)),
    ],
)
def test_downsample_shortens_what_the_lstm_reads(
    family: str, extra: dict[str, Any], lstm_input: tuple[Any, ...]
) -> None:
    model = build_model(
        {**SMALL[family], **extra}, input_shape=(256, 1), head=Head("classification", 2)
    )
    (lstm,) = layers_of(model, "LSTM")
    assert tuple(lstm.input.shape) == lstm_input


def cudnn_arguments_ok(lstm: Any) -> bool:
    """Keras's own test of the LSTM arguments its TensorFlow cuDNN kernel supports, if found."""
    try:
        from keras.src.backend.tensorflow.rnn import _do_lstm_arguments_support_cudnn
    except ImportError:  # a private helper of Keras 3.x: the config checks above still hold
        return True
    return bool(
        _do_lstm_arguments_support_cudnn(
            lstm.cell.activation, lstm.cell.recurrent_activation, lstm.unroll, lstm.cell.use_bias
        )
    )


@pytest.mark.parametrize("family", ["lstm", "lstm_fcn"])
def test_lstms_keep_the_cudnn_configuration(family: str) -> None:
    params = {**SMALL[family]}
    if family == "lstm":
        params.update(layers=2, bidirectional=True)
    regularisation = {"dropout": 0.3, "l2": 1e-3, "noise_std": 0.1}
    model = build_model(
        params, input_shape=(64, 1), head=Head("classification", 2), regularisation=regularisation
    )
    lstms = layers_of(model, "LSTM")
    assert len(lstms) == (4 if family == "lstm" else 1)  # 2 layers x 2 directions
    for lstm in lstms:
        config = lstm.get_config()
        assert config["activation"] == "tanh"
        assert config["recurrent_activation"] == "sigmoid"
        assert config["recurrent_dropout"] == 0
        assert config["dropout"] == 0
        assert config["unroll"] is False
        assert config["use_bias"] is True
        assert lstm.use_cudnn == "auto"
        assert cudnn_arguments_ok(lstm)
        assert lstm.cell.kernel_regularizer is not None
        assert lstm.cell.recurrent_regularizer is not None


def test_lstm_stack_returns_sequences_until_the_last_layer() -> None:
    params = {**SMALL["lstm"], "layers": 3, "bidirectional": True}
    model = build_model(params, input_shape=(64, 1), head=Head("classification", 2))
    assert model.name == "bilstm3"
    assert [lstm.return_sequences for lstm in layers_of(model, "LSTM")[::2]] == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize("family", sorted(SMALL))
@pytest.mark.parametrize("on", [False, True])
def test_regularisation_layers_exist_iff_asked(family: str, on: bool) -> None:
    import keras

    params = {**SMALL[family]}
    if family == "lstm_fcn":
        params["lstm_dropout"] = 0.0  # its own branch dropout, tested below
    value = {"dropout": 0.25, "l2": 1e-3, "noise_std": 0.05} if on else {}
    shape = SHAPES[min(FAMILIES[family].ranks)]
    model = build_model(
        params, input_shape=shape, head=Head("classification", 2), regularisation=value
    )
    dropouts = layers_of(model, "Dropout")
    noises = layers_of(model, "GaussianNoise")
    assert [d.rate for d in dropouts] == ([0.25] if on else [])
    assert [n.stddev for n in noises] == ([0.05] if on else [])
    assert bool(model.losses) is on
    kernels = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv1D | keras.layers.Dense)
    ]
    assert all((layer.kernel_regularizer is not None) is on for layer in kernels)


def test_lstm_fcn_is_karims_architecture() -> None:
    """Karim et al.'s LSTM-FCN with 8 cells: parameter count by hand, Dropout(0.8) by default."""
    params = {
        "name": "lstm_fcn",
        "lstm_units": 8,
        "filters": 128,
        "kernel_size": 8,
        "norm": "batch",
    }
    model = build_model(params, input_shape=(256, 1), head=Head("classification", 2))
    assert [d.rate for d in layers_of(model, "Dropout")] == [0.8]
    convs = layers_of(model, "Conv1D")
    assert [(c.filters, c.kernel_size[0]) for c in convs] == [(128, 8), (256, 5), (128, 3)]
    lstm = 4 * 8 * (256 + 8 + 1)  # one step of 256 features (dimension shuffle)
    fcn = (8 * 1 * 128 + 128) + (5 * 128 * 256 + 256) + (3 * 256 * 128 + 128)
    batch_norm = 4 * (128 + 256 + 128)
    head = (8 + 128) * 2 + 2
    assert model.count_params() == lstm + fcn + batch_norm + head


def test_cnn_is_wangs_fcn() -> None:
    params = {
        "name": "cnn",
        "filters": 128,
        "kernel_size": 8,
        "pooling": "none",
        "norm": "batch",
    }
    model = build_model(params, input_shape=(256, 1), head=Head("classification", 2))
    assert model.name == "cnn3"
    convs = layers_of(model, "Conv1D")
    assert [(c.filters, c.kernel_size[0]) for c in convs] == [(128, 8), (256, 5), (128, 3)]
    assert not layers_of(model, "MaxPooling1D")
    assert model.count_params() == 265_986  # Wang's FCN on one channel, two classes


def test_cnn_pooling_halves_between_layers() -> None:
    params = {**SMALL["cnn"], "layers": 4, "pooling": "average"}
    model = build_model(params, input_shape=(64, 1), head=Head("classification", 2))
    pools = layers_of(model, "AveragePooling1D")
    assert [p.output.shape[1] for p in pools] == [32, 16, 8]
    assert [c.filters for c in layers_of(model, "Conv1D")] == [4, 8, 8, 4]


def test_build_resnet1d_is_the_resnet_family() -> None:
    import keras

    keras.utils.set_random_seed(3)
    old = build_resnet1d((64, 1), 2, blocks=2, filters=8, kernel_size=5, dropout=0.1, l2=1e-3)
    keras.utils.set_random_seed(3)
    new = build_model(
        {"name": "resnet", "blocks": 2, "filters": 8, "kernel_size": 5},
        input_shape=(64, 1),
        head=Head("classification", 2),
        regularisation={"dropout": 0.1, "l2": 1e-3},
    )
    assert old.name == new.name == "resnet7"
    for a, b in zip(old.get_weights(), new.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("model", "regularisation", "message"),
    [
        (
            {"name": "transformer"},
            None,
            r"`model.name` must be one of cnn, counter_grid, lstm, lstm_fcn, resnet",
        ),
        ({"blocks": 3}, None, r"`model.name` must be one of"),
        ("resnet", None, r"`model` must be a mapping with a `name` key"),
        (
            {"name": "lstm", "units": 4, "layers": 1},
            None,
            r"model 'lstm': missing key\(s\) \['bidirectional'\]; it takes units, layers, "
            r"bidirectional; optional: downsample=1",
        ),
        (
            {**SMALL["cnn"], "kernel": 3},
            None,
            r"model 'cnn': unknown key\(s\) \['kernel'\]; it takes filters, kernel_size, pooling",
        ),
        ({**SMALL["lstm"], "units": "4"}, None, r"`units` must be an integer >= 1, got '4'"),
        ({**SMALL["lstm"], "units": True}, None, r"`units` must be an integer"),
        ({**SMALL["lstm"], "units": 0}, None, r"`units` must be an integer >= 1, got 0"),
        ({**SMALL["lstm"], "bidirectional": 1}, None, r"`bidirectional` must be true or false"),
        ({**SMALL["cnn"], "pooling": "min"}, None, r"`pooling` must be one of 'max', 'average'"),
        ({**SMALL["resnet"], "norm": "instance"}, None, r"`norm` must be one of 'group'"),
        (SMALL["cnn"], {"dropout": 1.0}, r"regularisation: `dropout` must be a number >= 0"),
        (SMALL["cnn"], {"l1": 0.1}, r"regularisation: unknown key\(s\) \['l1'\]"),
    ],
)
def test_wrong_parameters_say_which_key_and_what_is_allowed(
    model: Any, regularisation: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(
            model,
            input_shape=(64, 1),
            head=Head("classification", 2),
            regularisation=regularisation,
        )


def test_heads_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match=r"Head\.kind"):
        Head("ranking", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a binary task has 2 classes"):
        Head("classification", 1)
    with pytest.raises(ValueError, match=r"Head\.units must be >= 1 for regression"):
        Head("regression", 0)


def test_integral_floats_and_numpy_values_are_accepted() -> None:
    params = {**SMALL["lstm"], "units": np.int64(4), "layers": 1.0, "bidirectional": np.bool_(0)}
    model = build_model(params, input_shape=(64, 1), head=Head("classification", 2))
    assert model.name == "lstm1"


def test_importing_the_models_package_loads_no_keras() -> None:
    code = (
        "import sys, hpsearch.models as m; m.FAMILIES['lstm'].accepts(); "
        "heavy = [n for n in ('keras', 'tensorflow') if n in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
