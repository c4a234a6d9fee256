"""Training and evaluation of classifiers, used by growth and by the baselines."""
from .device import model_device, resolve_device
from .metrics import Evaluation, evaluate
from .train import EpochRecord, TrainConfig, Training, TrainResult, learning_rate_factor, make_optimizer, train

__all__ = ["EpochRecord", "Evaluation", "TrainConfig", "TrainResult", "Training", "evaluate", "learning_rate_factor",
           "make_optimizer", "model_device", "resolve_device", "train"]
