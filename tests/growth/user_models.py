"""Networks a user might write by hand, built from standard layers (not from the zoo)."""
import torch
import torch.nn.functional as F
from torch import nn


class ResidualNet(nn.Module):
    """A stem and one residual block written out by hand, global pooling with torch.mean."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(6)
        self.conv1 = nn.Conv2d(6, 5, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(5)
        self.conv2 = nn.Conv2d(5, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        y = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(x + self.bn2(self.conv2(y)))
        return self.head(x.mean((2, 3)))


class ConcatNet(nn.Module):
    """Two branches concatenated, a BatchNorm over the concatenation, flatten (not pooling) into a Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.left = nn.Conv2d(4, 3, 1)
        self.right = nn.Conv2d(4, 5, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.mix = nn.Conv2d(8, 6, 3, stride=2, padding=1)
        self.head = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = F.relu6(self.norm(torch.cat([self.left(x), self.right(x)], dim=1)))
        x = F.relu(self.mix(x))
        return self.head(torch.flatten(x, 1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(7, 9), nn.BatchNorm1d(9), nn.Tanh(), nn.Linear(9, 5), nn.GELU(), nn.Dropout(0.1),
            nn.Linear(5, 2),
        )

    def forward(self, x):
        return self.net(x)


class SqueezeExciteNet(nn.Module):
    """A squeeze-and-excitation gate: the gate's channels and the gated channels are one group."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.squeeze = nn.Conv2d(6, 2, 1)
        self.excite = nn.Conv2d(2, 6, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.hardswish(self.bn(self.conv(x)))
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(self.pool(x)))))
        x = x * gate
        return self.head(self.pool(x).flatten(1))


class UserStyleNet(nn.Module):
    """What a user writes: a stem, a residual block, a squeeze-and-excitation gate, two Hardswish branches
    concatenated, a strided ReLU block and a classifier (issue 17's network; a (1, 49, 10) input)."""

    def __init__(self, channels: int = 8, num_classes: int = 4):
        super().__init__()
        c = channels
        self.stem = nn.Conv2d(1, c, 3, stride=2, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(c)
        self.res1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.res1_bn = nn.BatchNorm2d(c)
        self.res1_act = nn.ReLU()
        self.res2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.res2_bn = nn.BatchNorm2d(c)
        self.se_pool = nn.AdaptiveAvgPool2d(1)
        self.se_reduce = nn.Conv2d(c, max(1, c // 2), 1)
        self.se_act = nn.ReLU()
        self.se_expand = nn.Conv2d(max(1, c // 2), c, 1)
        self.left = nn.Conv2d(c, c, 1, bias=False)
        self.left_bn = nn.BatchNorm2d(c)
        self.left_act = nn.Hardswish()
        self.right = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.right_bn = nn.BatchNorm2d(c)
        self.right_act = nn.Hardswish()
        self.block = nn.Conv2d(2 * c, c, 3, stride=2, padding=1, bias=False)
        self.block_bn = nn.BatchNorm2d(c)
        self.block_act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = F.relu(x + self.res2_bn(self.res2(self.res1_act(self.res1_bn(self.res1(x))))))
        x = x * torch.sigmoid(self.se_expand(self.se_act(self.se_reduce(self.se_pool(x)))))
        x = torch.cat([self.left_act(self.left_bn(self.left(x))), self.right_act(self.right_bn(self.right(x)))], 1)
        x = self.block_act(self.block_bn(self.block(x)))
        return self.head(self.pool(x).flatten(1))


class ChannelShuffleNet(nn.Module):
    """A channel shuffle (view + transpose) that channel groups cannot follow."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(4, 4, 1)
        self.c = nn.Conv2d(4, 5, 1)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        x = self.b(torch.relu(self.a(x)))
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        x = torch.relu(self.c(x))
        return self.head(x.mean((2, 3)))


class SharedConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = torch.relu(self.a(x))
        x = self.shared(torch.relu(self.shared(x)))
        return self.head(x.mean((2, 3)))


class GroupedConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.grouped(torch.relu(self.a(x))).mean((2, 3)))


class DataDependentNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.a(x)
        return -self.a(x)


USER_MODELS = {
    "residual": (ResidualNet, (3, 8, 8)),
    "concat": (ConcatNet, (3, 8, 8)),
    "mlp": (MLP, (7,)),
    "squeeze-excite": (SqueezeExciteNet, (3, 6, 6)),
    "user-style": (UserStyleNet, (1, 49, 10)),
}


def randomize_batchnorm(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, as training would."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
    return model
