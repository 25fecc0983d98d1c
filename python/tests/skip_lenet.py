"""A model that is none of emc's families: a LeNet-style network with a skip connection around its second convolution,
built with keyword arguments (`--model py:python/tests/skip_lenet.py:make_lenet,width=6,hidden=32`)."""
import torch
import torch.nn as nn


class SkipLeNet(nn.Module):
    def __init__(self, shape, classes, width, hidden, dropout):
        super().__init__()
        c, h, w = shape
        self.conv1 = nn.Conv2d(c, width, 5, padding=2)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(width * (h // 4) * (w // 4), hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(x + self.conv2(x)))
        return self.fc2(self.drop(torch.relu(self.fc1(x.flatten(1)))))


def make_lenet(shape, classes, width=6, hidden=32, dropout=0.0):
    return SkipLeNet(shape, classes, width, hidden, dropout)
