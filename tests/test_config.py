import pytest

from trimnet.config import RunConfig, TrainConfig, apply_overrides, from_dict, to_dict
from trimnet.errors import ConfigError


def test_round_trip_and_overrides():
    data = apply_overrides(to_dict(RunConfig()), [("train.epochs", "5"), ("train.lr", "3e-4"),
                                                  ("data.source", "wine"), ("train.grad_clip", "1")])
    cfg = from_dict(RunConfig, data)
    assert cfg.train.epochs == 5 and cfg.train.lr == pytest.approx(3e-4)
    assert cfg.data.source == "wine" and cfg.train.grad_clip == 1.0
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown config key train.epoch;.*train.epochs"):
        from_dict(RunConfig, {"train": {"epoch": 3}})


@pytest.mark.parametrize("override, message", [
    (("train.epochs", "abc"), "train.epochs must be an integer"),
    (("train.epochs", "2.5"), "train.epochs must be an integer"),
    (("train.progress", "maybe"), "train.progress must be true or false"),
])
def test_wrong_types_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(RunConfig, apply_overrides(to_dict(RunConfig()), [override]))


@pytest.mark.parametrize("field, value", [("epochs", 0), ("lr", -1.0), ("optimizer", "lion"),
                                          ("schedule", "linear"), ("label_smoothing", 1.0)])
def test_validation(field, value):
    with pytest.raises(ConfigError, match=f"train.{field}"):
        TrainConfig(**{field: value}).validate()


def test_version_is_checked():
    with pytest.raises(ConfigError, match="version 7"):
        from_dict(RunConfig, {"version": 7}).validate()


def test_one_value_for_a_list_is_a_list_of_one():
    from trimnet.optimize.search import OptimizeConfig

    cfg = from_dict(OptimizeConfig, apply_overrides(to_dict(OptimizeConfig()), [("ratios", "0.5"),
                                                                               ("criteria", "apoz")]))
    assert cfg.ratios == [0.5] and cfg.criteria == ["apoz"]
    cfg = from_dict(OptimizeConfig, {"ratios": "0.25, 0.5", "precisions": ["fp32"]})
    assert cfg.ratios == [0.25, 0.5] and cfg.precisions == ["fp32"]
    with pytest.raises(ConfigError, match=r"ratios\[1\] must be a number"):
        from_dict(OptimizeConfig, {"ratios": [0.5, "most"]})


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400", float("nan")])
def test_numbers_must_be_finite(value):
    with pytest.raises(ConfigError, match="train.lr must be a finite number"):
        from_dict(RunConfig, apply_overrides(to_dict(RunConfig()), [("train.lr", value)]))


def test_alias_bomb_is_refused_without_expanding_it(tmp_path):
    import time

    from trimnet.config import load_yaml

    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"{n}: &{n} [{', '.join(['*' + p] * 10)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines))
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="through YAML aliases"):
        load_yaml(tmp_path / "bomb.yaml")
    assert time.perf_counter() - t0 < 10  # expanding it needs 10^9 values of memory
    (tmp_path / "ok.yaml").write_text("base: &b {epochs: 3}\ntrain: *b\n")  # ordinary anchors still work
    assert load_yaml(tmp_path / "ok.yaml")["train"] == {"epochs": 3}


def test_device_names_are_checked():
    for good in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        TrainConfig(device=good).validate()
    with pytest.raises(ConfigError, match="train.device 'tpu' is unknown"):
        TrainConfig(device="tpu").validate()


def test_dump_yaml_is_atomic(tmp_path):
    from trimnet.config import dump_yaml, load_yaml

    path = tmp_path / "config.yaml"
    dump_yaml(RunConfig(), path)
    assert load_yaml(path)["train"]["epochs"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
    assert path.stat().st_mode & 0o044  # readable by others, as a plain file is (not mkstemp's 0600)
