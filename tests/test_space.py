"""The space language: conditional choices to any depth, includes, and every mistake named."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hpsearch.errors import InputError
from hpsearch.searchers import _optuna
from hpsearch.spec import Choice, load_space

NESTED = """
params:
  batch_size: {type: categorical, choices: [32, 64]}
  model:
    type: choice
    options:
      resnet:
        blocks: {type: int, low: 1, high: 5}
        filters: {type: categorical, choices: [8, 16]}
      lstm:
        units: {type: int, low: 8, high: 64, log: true}
        cell:
          type: choice
          options:
            plain: {}
            peephole:
              width: {type: int, low: 1, high: 3}
        downsample: 8
  optimizer:
    type: choice
    options:
      adam: {learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
      sgd:
        learning_rate: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
        nesterov: {type: categorical, choices: [false, true]}
"""


def _write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_choice_decodes_to_its_option_and_only_its_parameters(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, NESTED))
    assert space.conditional
    flat = {
        "batch_size": 32,
        "model": "lstm",
        "model.lstm.units": 16,
        "model.lstm.cell": "peephole",
        "model.lstm.cell.peephole.width": 2,
        "optimizer": "adam",
        "optimizer.adam.learning_rate": 0.001,
    }
    assert space.decode(flat) == {
        "batch_size": 32,
        "model": {
            "name": "lstm",
            "units": 16,
            "cell": {"name": "peephole", "width": 2},
            "downsample": 8,
        },
        "optimizer": {"name": "adam", "learning_rate": 0.001},
    }
    with pytest.raises(ValueError, match=r"model\.lstm\.units"):
        space.decode({k: v for k, v in flat.items() if k != "model.lstm.units"})
    with pytest.raises(ValueError, match="none of"):
        space.decode({**flat, "model": "gru"})


def test_names_say_which_branch_and_sizes_add_over_options(tmp_path: Path) -> None:
    space = load_space(
        _write(tmp_path, NESTED.replace("log: true}\n        cell", "step: 8}\n        cell"))
    )
    names = list(space.params())
    assert names == [
        "batch_size",
        "model",
        "model.resnet.blocks",
        "model.resnet.filters",
        "model.lstm.units",
        "model.lstm.cell",
        "model.lstm.cell.peephole.width",
        "optimizer",
        "optimizer.adam.learning_rate",
        "optimizer.sgd.learning_rate",
        "optimizer.sgd.nesterov",
    ]
    assert space.params()["model"].choices == ["resnet", "lstm"]  # type: ignore[union-attr]
    assert space.size() is None  # learning rates are continua
    finite = load_space(
        _write(
            tmp_path,
            "params:\n  a: {type: categorical, choices: [1, 2]}\n"
            "  m:\n    type: choice\n    options:\n"
            "      x: {n: {type: int, low: 1, high: 10, step: 3}}\n"
            "      y: {}\n",
            "finite.yaml",
        )
    )
    assert finite.size() == 2 * (4 + 1)


def test_optuna_stores_exactly_the_branch_a_trial_took(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, NESTED))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = _optuna.suggest(space, trial)
        study.tell(trial, 0.0)
        stored = study.trials[-1].params
        option = params["model"]["name"]
        seen.add(option)
        branch = {k for k in stored if k.startswith("model.")}
        assert all(k.startswith(f"model.{option}.") for k in branch)
        if option == "lstm":
            assert "filters" not in params["model"] and "model.resnet.filters" not in stored
            assert params["model"]["downsample"] == 8
            assert 8 <= params["model"]["units"] <= 64
        else:
            assert set(params["model"]) == {"name", "blocks", "filters"}
        assert set(stored) <= set(space.params())
        assert space.decode(stored) == params
    assert seen == {"resnet", "lstm"}


def test_includes_merge_with_local_overrides(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "dropout: {type: float, low: 0.0, high: 0.5}\n"
        "l2: {type: float, low: 1.0e-6, high: 1.0e-2, log: true}\n"
        "noise:\n  std: {type: float, low: 0.0, high: 0.2}\n  kind: gaussian\n",
        "fragments/regularisation.yaml",
    )
    _write(
        tmp_path,
        "include: regularisation.yaml\nextra: {type: int, low: 1, high: 2}\n",
        "fragments/more.yaml",
    )
    path = _write(
        tmp_path,
        "params:\n"
        "  regularisation:\n"
        "    include: fragments/more.yaml\n"
        "    dropout: {type: float, low: 0.0, high: 0.2}   # local override\n"
        "    noise: {kind: none}\n"
        "  lr_schedule:\n"
        "    type: choice\n"
        "    options:\n"
        "      constant: {}\n"
        "      regularised: {include: fragments/regularisation.yaml}\n",
    )
    space = load_space(path)
    params = space.params()
    assert params["regularisation.dropout"].high == 0.2  # type: ignore[union-attr]
    assert "regularisation.l2" in params and "regularisation.extra" in params
    assert "regularisation.noise.std" in params  # groups merge key by key
    assert "lr_schedule.regularised.dropout" in params
    flat = {name: 1 for name in params if not name.startswith("lr_schedule")}
    decoded = space.decode({**flat, "lr_schedule": "constant"})
    assert decoded["regularisation"]["noise"] == {"std": 1, "kind": "none"}
    assert decoded["lr_schedule"] == {"name": "constant"}
    assert [p.name for p in space.includes] == [
        "more.yaml",
        "regularisation.yaml",
        "regularisation.yaml",
    ]


def test_include_cycles_and_missing_includes_name_the_chain(tmp_path: Path) -> None:
    _write(tmp_path, "include: b.yaml\nx: {type: int, low: 1, high: 2}\n", "a.yaml")
    _write(tmp_path, "include: a.yaml\n", "b.yaml")
    path = _write(tmp_path, "params:\n  g: {include: a.yaml}\n")
    with pytest.raises(InputError, match="include cycle") as info:
        load_space(path)
    trail = str(info.value).split("include cycle: ")[1].splitlines()[0].split(" -> ")
    assert [Path(p).name for p in trail] == ["space.yaml", "a.yaml", "b.yaml", "a.yaml"]
    missing = _write(tmp_path, "params:\n  g: {include: nowhere.yaml}\n", "missing.yaml")
    with pytest.raises(InputError, match=r"nowhere\.yaml") as info:
        load_space(missing)
    assert info.value.key == "params.g.include"
    assert "chain" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            "params:\n  n: {type: int, low: 1, high: 10, step: 4}\n",
            "params.n",
            "`step` must divide",
        ),
        (
            "params:\n  x: {type: float, low: 0.0, high: 1.0, step: 0.3}\n",
            "params.x",
            "`step` must divide",
        ),
        ("params:\n  m: {type: choice, options: {}}\n", "params.m.options", "non-empty"),
        ("params:\n  m: {type: choice}\n", "params.m.options", "non-empty"),
        (
            "params:\n  m: {type: choice, options: {2fast: {}}}\n",
            "params.m.options.2fast",
            "not a valid identifier",
        ),
        (
            "params:\n  m: {type: choice, options: {a: {name: 3}}}\n",
            "params.m.options.a.name",
            "reserved",
        ),
        (
            "params:\n  m: {type: choice, choices: [a]}\n",
            "params.m.choices",
            "takes `options`",
        ),
        ("params:\n  m: {type: choise, options: {a: {}}}\n", "params.m.type", "choice"),
        (
            "params:\n  x: {type: int, low: 1, high: 2}\n  x: {type: int, low: 1, high: 3}\n",
            "x",
            "given twice",
        ),
        (
            "params:\n  m: {type: choice, options: {a: 3}}\n",
            "params.m.options.a",
            "mapping of its parameters",
        ),
        (
            "params:\n  m:\n    type: choice\n    options:\n"
            "      a: {n: {type: int, low: 3, high: 1}}\n",
            "params.m.options.a.n",
            "empty range",
        ),
        ("params:\n  g: {include: [3]}\n", "params.g.include", "file path"),
        (  # Optuna stores choices by ==: true would come back as 1
            "params:\n  c: {type: categorical, choices: [1, true, 0]}\n",
            "params.c",
            "same value to Python and Optuna",
        ),
        (  # divides only to within rounding: Optuna would move high down to 0.9
            "params:\n  x: {type: float, low: 0.0, high: 0.9999999999, step: 0.1}\n",
            "params.x",
            "e.g. high=0.9",
        ),
    ],
)
def test_space_mistakes_name_file_key_and_fix(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_space(path)
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.fix


def test_a_mistake_inside_a_fragment_names_the_fragment(tmp_path: Path) -> None:
    fragment = _write(tmp_path, "lr: {type: float, low: 1.0, high: 0.1}\n", "frag.yaml")
    path = _write(tmp_path, "params:\n  opt: {include: frag.yaml}\n")
    with pytest.raises(InputError) as info:
        load_space(path)
    assert info.value.source == str(fragment.resolve())
    assert info.value.key == "lr"


def test_choice_node_type() -> None:
    space_choice = Choice(options={"a": {}, "b": {}})
    assert space_choice.as_param().choices == ["a", "b"]
    assert space_choice.size() == 2
