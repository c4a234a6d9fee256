"""edgegrow: grow tiny networks into the most accurate network a target device can afford.

The network is a plain ``torch.nn.Module`` at every moment; growth is an edit of it.
"""
from .growth import (
    ChannelGroup,
    add_neurons,
    deepen,
    find_channel_groups,
    group_named,
    group_width,
    growable_groups,
    split_neurons,
)
from .models import build_model, build_seed, example_input

__version__ = "0.1.0"

__all__ = [
    "ChannelGroup", "__version__", "add_neurons", "build_model", "build_seed", "deepen", "example_input",
    "find_channel_groups", "group_named", "group_width", "growable_groups", "split_neurons",
]
