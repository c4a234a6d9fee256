"""Function-preserving growth of plain PyTorch networks.

- ``find_channel_groups(model, example_input)``: every set of coupled channels, growable or not.
- ``split_neurons(model, group, neurons, ...)``: split neurons into offspring (S2D, signed splitting).
- ``add_neurons(model, group, count, ...)``: append new neurons with given fan-in and fan-out.
- ``deepen(model, after, example_input, ...)``: insert an identity-initialised layer or DS block.
- ``splitting_matrix``: where to split — S2D splitting matrices per neuron, exactly
  (``splitting_matrices`` + ``min_eigenpairs``) or without forming them (``splitting_products`` +
  ``min_eigenpairs_fast``).

Every operation edits the model in place, keeps it a plain ``nn.Module``, computes the same
function at ε = 0, carries optimizer state over when given the optimizer, and leaves the model
untouched when it rejects its arguments (ValueError).
"""
from .arguments import fan_in_shape, fan_out_shape
from .channel_groups import ChannelGroup, Segment, Slot, find_channel_groups, group_named, growable_groups
from .deepen import deepen
from .new_neurons import add_neurons
from .split import split_neurons
from .splitting_matrix import (
    CurvatureSite,
    Eigenpairs,
    curvature_sites,
    min_eigenpairs,
    min_eigenpairs_fast,
    splitting_matrices,
    splitting_products,
)
from .staged_edit import group_width

__all__ = [
    "ChannelGroup", "CurvatureSite", "Eigenpairs", "Segment", "Slot", "add_neurons", "curvature_sites", "deepen",
    "fan_in_shape", "fan_out_shape", "find_channel_groups", "group_named", "group_width", "growable_groups",
    "min_eigenpairs", "min_eigenpairs_fast", "split_neurons", "splitting_matrices", "splitting_products",
]
