"""Training and evaluation of classifiers, used by growth and by the baselines."""
from .metrics import Evaluation, evaluate
from .train import EpochRecord, TrainConfig, TrainProgress, TrainResult, learning_rate_factor, make_optimizer, train

__all__ = ["EpochRecord", "Evaluation", "TrainConfig", "TrainProgress", "TrainResult", "evaluate",
           "learning_rate_factor", "make_optimizer", "train"]
