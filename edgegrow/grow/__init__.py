"""Growing a seed network to a device budget inside one training run.

- ``config.py``: ``GrowConfig``, every setting of a run (the same keys as ``edgegrow grow``'s flags);
- ``schedule.py``: when growth events happen and how much of the budget each may take;
- ``methods.py``: the growth methods behind one interface (``propose``) and their registry;
- ``growth_step.py``: one growth event — propose, select under the budget, apply;
- ``loop.py``: ``grow()``, the run itself, read top to bottom;
- ``run_folder.py``: the run folder's files and typed records (``RunLog``, ``Summary``, ``RunMeta``);
- ``callbacks.py``: hooks called after every epoch and growth event (``GrowCallback``), and
  ``TensorBoardLog``;
- ``checks.py``: what a run refuses before training.
"""
from .callbacks import GrowCallback, Rollback, RunStart, TensorBoardLog
from .checks import check_budget_reachable, check_seed_fits, check_seed_suits_task
from .config import GrowConfig
from .growth_step import model_depth, model_widths
from .loop import NUMERICAL_RETRIES, GrowResult, NumericalFault, grow
from .methods import METHODS, GrowthMethod, ProposalContext, growth_method, register_method
from .run_folder import EpochRow, GrowthRow, Outcome, RunFolder, RunLog, RunMeta, Summary, read_run
from .schedule import GrowthEvent, growth_events

__all__ = [
    "METHODS", "NUMERICAL_RETRIES", "EpochRow", "GrowCallback", "GrowConfig", "GrowResult", "GrowthEvent", "GrowthMethod", "GrowthRow",
    "NumericalFault", "Outcome", "ProposalContext", "Rollback", "RunFolder", "RunLog", "RunMeta", "RunStart",
    "Summary",
    "TensorBoardLog",
    "check_budget_reachable", "check_seed_fits", "check_seed_suits_task", "grow", "growth_events", "growth_method",
    "model_depth", "model_widths", "read_run", "register_method",
]
