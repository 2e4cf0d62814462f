"""Training: the loop, optimizers and schedules, checkpoints, evaluation and prediction."""

from trimnet.train.evaluate import Evaluation, Predictions, evaluate, predict
from trimnet.train.loop import TrainResult, resolve_device, train

__all__ = ["Evaluation", "Predictions", "TrainResult", "evaluate", "predict", "resolve_device", "train"]
