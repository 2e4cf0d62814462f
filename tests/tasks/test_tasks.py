"""The task seam: regression end to end, a user's metric deciding the search, DataLoader input."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import trimnet as tn
from trimnet.data import as_dataset, from_arrays
from trimnet.errors import ConfigError, ModelError
from trimnet.optimize.finetune import FinetuneConfig
from trimnet.tasks import get_task, list_tasks, task_for

FAST = dict(criteria=["l1"], ratios=[0.5], finetune_epochs=2, finetune_retry_epochs=0, precisions=["fp32"],
            bench_time_s=0.05, target_backend="onnxruntime")


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = (2 * x[:, 0] - x[:, 1] + np.sin(2 * x[:, 2])).astype(np.float32)
    return from_arrays(x, y, task="regression")


@pytest.fixture(scope="module")
def trained_regressor(regression, tmp_path_factory):
    torch.manual_seed(0)
    model = tn.create_model("mlp", regression.in_shape, regression.num_classes, hidden=[64, 64])
    out = tmp_path_factory.mktemp("reg") / "run"
    result = tn.train(model, regression, tn.TrainConfig(epochs=15, batch_size=32, lr=3e-3), out=out)
    return result, out


def test_registry_has_the_tasks_and_names_unknown_ones():
    assert {"classification", "regression"} <= set(list_tasks())
    with pytest.raises(ConfigError, match="unknown task 'ranking'"):
        get_task("ranking")


def test_accuracy_is_the_share_of_argmax_hits():
    outputs = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert get_task("classification").metric(outputs, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.75)
    # a runtime's numpy output scores the same
    assert get_task("classification").metric(outputs.numpy(), torch.tensor([0, 1, 1, 1])) == pytest.approx(0.75)


def test_regression_metric_is_negative_mae():
    task = get_task("regression")
    assert task.metric(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0])) == pytest.approx(-1.0)
    assert float(task.loss(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0]))) == pytest.approx(1.0)


def test_regression_trains_evaluates_and_records_its_task(regression, trained_regressor):
    result, out = trained_regressor
    baseline = float((regression.y_test - regression.y_train.mean()).abs().mean())  # predicting the mean
    mae = -result.metrics["test_neg_mae"]
    assert mae < 0.4 * baseline
    assert result.metrics["task"] == "regression" and "test_accuracy" not in result.metrics
    art = tn.load_artifact(out)
    assert art.task == {"name": "regression", "metric": "neg_mae", "outputs": 1}
    assert art.class_names == []
    ev = tn.evaluate(out, regression)
    assert ev.task == "regression" and ev.accuracy is None
    assert ev.extra["mae"] == pytest.approx(mae, rel=1e-5)
    assert ev.score == pytest.approx(-mae, rel=1e-5)
    assert ev.extra["r2"] > 0.9
    raw = regression.normalization  # predict takes raw inputs and normalizes them as in training
    x_raw = regression.x_test[:5] * torch.tensor(raw.std) + torch.tensor(raw.mean)
    pred = tn.predict(out, x_raw.numpy())
    first = float(art.model(regression.x_test[:1]).detach())
    assert pred.to_dict()["predictions"][0]["value"] == pytest.approx(first, abs=1e-4)
    assert np.abs(pred.values - regression.y_test[:5].numpy()).mean() < 3 * mae


def test_regression_prunes_and_fine_tunes_on_its_own_loss(regression, trained_regressor):
    model = trained_regressor[0].model
    res = tn.prune(model, regression, tn.PruneConfig(criterion="l1", ratio=0.5,
                                                     finetune=FinetuneConfig(epochs=3, seed=0)))
    acc = res.record.accuracy  # the task's metric: negative MAE on the test split
    assert res.record.params[1] < 0.5 * res.record.params[0]
    assert acc["after"] > acc["pruned"]  # fine-tuning (MSE, no distillation) recovered part of the loss
    assert res.model(regression.x_test[:4]).shape == (4, 1)


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_regression_optimize_measures_neg_mae(regression, trained_regressor):
    model = trained_regressor[0].model
    res = tn.optimize(model, regression, tn.OptimizeConfig(max_accuracy_drop=0.05, **FAST))
    original_mae = float((model(regression.x_val).detach().squeeze(1) - regression.y_val).abs().mean())
    assert res.baseline_val_accuracy == pytest.approx(-original_mae, rel=1e-4)
    assert res.original.val_accuracy == pytest.approx(-original_mae, rel=1e-3)  # through onnxruntime
    assert res.test_accuracy < 0  # negative MAE, not an accuracy
    assert all(c.val_accuracy is None or c.val_accuracy < 0 for c in res.candidates)


def test_a_user_metric_decides_the_winner(small_digits):
    torch.manual_seed(0)
    model = tn.create_model("mlp", small_digits.in_shape, small_digits.num_classes, hidden=[64])
    tn.train(model, small_digits, tn.TrainConfig(epochs=8, batch_size=32, lr=3e-3))
    cfg = tn.OptimizeConfig(max_accuracy_drop=0.5, **{**FAST, "target_backend": "torch"})
    by_accuracy = tn.optimize(model, small_digits, cfg)
    pruned = next(c for c in by_accuracy.candidates if c.structure == "l1-0.5" and c.backend == "torch")
    assert pruned.accepted  # half a point of budget: accuracy lets pruning in

    with torch.no_grad():
        reference = {len(y): model.eval()(x) for x, y in (small_digits.split("val"), small_digits.split("test"))}
    seen = []

    def agreement(outputs, targets):  # the user's metric: stay (almost) exactly the original's outputs
        seen.append(tuple(outputs.shape))
        return -100.0 * float(((outputs - reference[len(targets)]) ** 2).mean())

    loaders = tuple(DataLoader(TensorDataset(*small_digits.split(s)), batch_size=64) for s in ("train", "val", "test"))
    by_user = tn.optimize(model, loaders, cfg, evaluate=agreement)  # as the user writes it: loaders + a metric
    assert by_user.best.original or by_user.best.structure == "original"  # nothing else agrees within 0.5
    user_pruned = next(c for c in by_user.candidates if c.structure == "l1-0.5" and c.backend == "torch")
    assert not user_pruned.accepted and user_pruned.val_accuracy < -0.5
    assert by_user.baseline_val_accuracy == pytest.approx(0.0, abs=1e-9)
    assert (len(small_digits.y_val), 10) in seen  # the whole split's raw outputs
    assert by_user.test_accuracy == pytest.approx(0.0, abs=1e-6)  # the test split scored by the user's metric too


def test_a_dataloader_trains_and_evaluates(small_digits):
    loader = DataLoader(TensorDataset(small_digits.x_train, small_digits.y_train), batch_size=50, shuffle=False)
    data = as_dataset(loader)
    assert data.task == "classification" and len(data.y_train) + len(data.y_val) + len(data.y_test) == 300
    trio = tuple(DataLoader(TensorDataset(*small_digits.split(s)), batch_size=64) for s in ("train", "val", "test"))
    torch.manual_seed(0)
    model = tn.create_model("mlp", small_digits.in_shape, 10, hidden=[32])
    result = tn.train(model, trio, tn.TrainConfig(epochs=6, batch_size=32, lr=3e-3))
    assert result.metrics["test_accuracy"] > 0.7
    # the trio keeps its splits: the same test split as the Dataset it came from
    assert tn.evaluate(model, small_digits).accuracy == pytest.approx(result.metrics["test_accuracy"])
    assert tn.evaluate(model, trio, split="val").accuracy == pytest.approx(
        tn.evaluate(model, small_digits, "val").accuracy)


def test_real_valued_loader_targets_mean_regression():
    x = torch.randn(40, 3)
    data = as_dataset(DataLoader(TensorDataset(x, x.sum(1)), batch_size=16))
    assert data.task == "regression" and data.num_classes == 1
    assert task_for(data).name == "regression"


def test_a_loader_of_the_wrong_shape_is_named():
    from trimnet.errors import DataError

    with pytest.raises(DataError, match=r"not \(inputs, targets\)"):
        as_dataset(DataLoader(TensorDataset(torch.randn(8, 3)), batch_size=4))


def test_a_model_with_the_wrong_number_of_outputs_is_named(regression):
    model = tn.create_model("mlp", regression.in_shape, 3, hidden=[8])
    with pytest.raises(ModelError, match="num_classes=1"):
        tn.train(model, regression, tn.TrainConfig(epochs=1))


def test_a_user_loss_is_what_training_minimises(regression):
    calls = []

    def l1(outputs, targets):
        calls.append(1)
        return (outputs.squeeze(1) - targets).abs().mean()

    torch.manual_seed(0)
    model = tn.create_model("mlp", regression.in_shape, 1, hidden=[16])
    result = tn.train(model, regression, tn.TrainConfig(epochs=2, batch_size=64), loss=l1)
    assert len(calls) >= 2 * (len(regression.y_train) // 64)
    assert result.history[-1]["train_loss"] == pytest.approx(-result.history[-1]["train_neg_mae"], rel=0.05)


def test_gradient_criteria_differentiate_the_task_loss(regression):
    torch.manual_seed(0)
    model = tn.create_model("mlp", regression.in_shape, 1, hidden=[32])
    res = tn.prune(model, regression, tn.PruneConfig(criterion="taylor", ratio=0.5,
                                                     finetune=FinetuneConfig(epochs=0)))
    assert res.record.params[1] < res.record.params[0]  # real-valued targets: MSE gradients, not cross-entropy


def test_serving_a_regression_model_gives_the_values_predict_gives(regression, trained_regressor):
    """The served model's outputs are the predicted values, as trimnet.predict computes them (tests/serve
    checks them through the real server, REST and gRPC)."""
    from trimnet.serve.model import load_model

    out = trained_regressor[1]
    served = load_model(out)
    assert (served.task, served.num_values, served.class_names) == ("regression", 1, [])
    raw = regression.normalization
    x_raw = (regression.x_test[:5] * torch.tensor(raw.std) + torch.tensor(raw.mean)).numpy()
    values = served.infer(served.preprocess(x_raw))
    assert values.shape == (5, 1) and values.dtype == np.float32
    np.testing.assert_array_equal(values[:, 0], tn.predict(tn.load_artifact(out), x_raw).values)
    served.close()


def test_serving_a_model_of_another_task_says_why_and_what_to_do(tmp_path):
    from trimnet.serve.model import load_model

    model = tn.create_model("mlp", (4,), 1, hidden=[8])
    tn.save_artifact(model, tmp_path / "rank", in_shape=(4,), extra={"task": {"name": "ranking", "outputs": 1}})
    with pytest.raises(ConfigError, match="ranking model; trimnet serve answers classification and regression "
                                          "models only.*trimnet predict"):
        load_model(tmp_path / "rank")


def _regression_csv(path, n=400, target="price", values=None):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = x @ np.array([1.5, -2.0, 0.5, 3.0]) if values is None else values
    lines = [f"a,b,c,d,{target}"] + [",".join([*(f"{v:.6g}" for v in row), t if isinstance(t, str) else f"{t:.6g}"])
                                     for row, t in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return x, y


def test_data_task_regression_reads_a_csv_target_as_numbers(tmp_path):
    """`data.task: regression`: the label column's real values are the targets, exactly as written."""
    x, y = _regression_csv(tmp_path / "house.csv")
    data = tn.load_dataset(f"csv:{tmp_path / 'house.csv'}", task="regression", label="price")
    assert data.task == "regression" and data.num_classes == 1 and data.class_names == []
    assert data.y_train.dtype == torch.float32
    every = torch.cat([data.y_train, data.y_val, data.y_test]).sort().values
    assert torch.allclose(every, torch.tensor(np.sort([float(f"{v:.6g}") for v in y]), dtype=torch.float32))
    assert len(data.y_test) == round(0.25 * 400) and "origin" in data.info and "in_memory" not in data.info


def test_data_task_regression_keeps_an_npz_test_split(tmp_path):
    rng = np.random.default_rng(2)
    x, xt = rng.normal(size=(200, 3)).astype(np.float32), rng.normal(size=(50, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=x.sum(1), x_test=xt, y_test=xt.sum(1))
    data = tn.load_dataset(f"npz:{tmp_path / 'd.npz'}", task="regression")
    assert len(data.y_test) == 50 and len(data.y_train) + len(data.y_val) == 200
    assert torch.allclose(data.y_test.sort().values, torch.from_numpy(np.sort(xt.sum(1))), atol=1e-6)


def test_cli_trains_a_regression_csv_and_prints_its_error(tmp_path, capsys):
    from trimnet.cli.main import main

    _regression_csv(tmp_path / "house.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", f"csv:{tmp_path / 'house.csv'}", "--data.task", "regression",
                 "--model", "mlp", "--train.epochs", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test MAE" in printed
    import json
    metrics = json.loads((out / "metrics.json").read_text())
    mae = float(printed.splitlines()[-1].split()[1])
    assert metrics["task"] == "regression" and mae == pytest.approx(-metrics["test_neg_mae"], abs=1e-4)
    assert mae < np.abs(np.array([1.5, -2.0, 0.5, 3.0])).sum()  # learnt something: under a blind guess's error


def test_cli_regression_on_words_names_the_fix(tmp_path, capsys):
    from trimnet.cli.main import main

    _regression_csv(tmp_path / "words.csv", n=60, values=["cheap", "dear"] * 30)
    code = main(["train", "--data", f"csv:{tmp_path / 'words.csv'}", "--data.task", "regression", "--model", "mlp",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "not a number" in err and "data.task classification" in err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--data.task", "ranking", "--out", str(tmp_path / "r2")]) == 2
    assert "classification or regression" in capsys.readouterr().err
