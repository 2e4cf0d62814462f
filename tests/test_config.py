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
