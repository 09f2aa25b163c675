"""PyTorch twins of libich's preset networks: the same layers, the same
state_dict names and shapes, written the usual PyTorch way. Used by the
benchmarks (bench/cnn_reference.py, bench/cuda_bench.py) and the tests that
compare libich with PyTorch (bindings/python/tests).

TWINS maps each preset's name to its class; Tutorial takes the side of the
last feature map (28 for the preset's 512 x 512 input)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Tutorial(nn.Module):
    """The tutorial's ConvNet."""

    def __init__(self, side=28):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 50, 5)
        self.conv2 = nn.Conv2d(50, 120, 5)
        self.conv3 = nn.Conv2d(120, 100, 5)
        self.conv4 = nn.Conv2d(100, 72, 4)
        self.fc1 = nn.Linear(72 * side * side, 50)
        self.fc2 = nn.Linear(50, 6)

    def forward(self, x):
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class Shortcut(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn1(self.conv1(x))


class Block(nn.Module):
    """ichnet's residual(conv, bn, relu, conv, bn; shortcut: conv 1x1, bn), relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = Shortcut(cin, cout) if stride != 1 else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class IchNet(nn.Module):
    def __init__(self, dropout=0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.res1 = Block(16, 16, 1)
        self.res2 = Block(16, 32, 2)
        self.res3 = Block(32, 64, 2)
        self.res4 = Block(64, 128, 2)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(128, 6)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = self.res4(self.res3(self.res2(self.res1(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc1(self.dropout(x))


class Stage(nn.Module):
    """One stage of the cascade."""

    def __init__(self, outputs):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64, outputs)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc1(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Cascade(nn.Module):
    def __init__(self):
        super().__init__()
        self.any = Stage(1)
        self.subtype = Stage(5)

    def forward(self, x):
        return torch.cat([self.any(x), self.subtype(x)], 1)


TWINS = {"tutorial": Tutorial, "ichnet": IchNet, "cascade": Cascade}
