#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures the trainer's tests compare against (Tests/EMCTrainerTests/Fixtures/torch).

For each case, `emc bench export-torch` writes a freshly initialised model and one fixed batch; this script builds the
same spec in PyTorch (scripts/bench/torch_models.py), loads emc's parameters into it, and writes, in emc's parameter
order and layouts:
  - the logits and the mean cross-entropy loss of a training-mode forward,
  - every parameter's gradient,
  - the parameters after one SGD step (lr 0.1) and, from the same start, after one Adam step (lr 0.01),
  - each batch norm's running mean and variance after that forward (momentum 0.1),
as NAME.json (the small values and the digests of emc's parameters and batch) and NAME.bin (gradients, SGD parameters,
Adam parameters: float32 little-endian). The tests read them without torch. Uses the virtualenv of torch_train.py.

    scripts/bench/torch_fixtures.py [--emc .build/debug/emc]
"""
import json
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import ROOT, ensure_torch  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "EMCTrainerTests", "Fixtures", "torch")
SGD_LR, ADAM_LR = 0.1, 0.01

# (name, spec, input HxWxC, classes, batch): small enough that all the fixtures together stay near 200 KiB.
CASES = [
    ("mlp", "mlp:width=8,depth=2,act=tanh", "4x4x3", 5, 4),
    ("cnn", "cnn:channels=4,layers=2,fc=8", "8x8x3", 5, 4),
    ("resnet-projection", "resnet:width=0.25,blocks=1,stages=2", "8x8x3", 5, 4),
    ("resnet-a", "resnet:width=0.25,blocks=1,stages=2,shortcut=a", "8x8x3", 5, 4),
    ("resnet-conv3", "resnet:width=0.25,blocks=1,stages=2,shortcut=conv3", "8x8x3", 5, 4),
    ("efficientnet", "efficientnet:width=0.05,depth=0.1,stages=3", "8x8x3", 5, 4),
    ("vit-cls", "vit:dim=16,depth=1,heads=2,patch=4,mlp=2", "8x8x3", 5, 4),
    ("vit-mean", "vit:dim=8,depth=2,heads=2,patch=4,mlp=2,pool=mean", "8x8x3", 5, 4),
]


def parse(argv=None):
    """The command line: --help prints the module's docstring and the options; an unknown option is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emc", default=os.path.join(ROOT, ".build", "debug", "emc"), help="the emc binary (default .build/debug/emc)")
    return parser.parse_args(argv)


def main():
    emc = parse().emc
    ensure_torch()
    import numpy as np
    import torch
    import torch_models

    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for name, spec, shape, classes, batch in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.check_call([emc, "bench", "export-torch", "--model", spec, "--input", shape, "--classes", str(classes),
                                   "--batch", str(batch), "--out", tmp, "--force"], stdout=subprocess.DEVNULL)
            meta = json.load(open(os.path.join(tmp, "meta.json")))
            params = np.fromfile(os.path.join(tmp, "params.bin"), dtype="<f4")
            inputs = np.fromfile(os.path.join(tmp, "input.bin"), dtype="<f4")
            labels = np.fromfile(os.path.join(tmp, "labels.bin"), dtype="<i4")
        h, w, c = meta["input"]

        def fresh():
            torch.manual_seed(0)
            model = torch_models.build(meta["spec"], (h, w, c), classes)
            counts = [p.numel() for p, _ in model.emc_tensors]
            assert counts == [t["count"] for t in meta["tensors"]], f"{name}: tensor sizes differ: torch {counts}, emc {meta['tensors']}"
            total = sum(p.numel() for p in model.parameters())
            assert total == meta["parameterCount"], f"{name}: torch has {total} parameters, emc {meta['parameterCount']}"
            offset = 0
            with torch.no_grad():
                for p, layout in model.emc_tensors:
                    p.copy_(torch_models.from_emc(torch.from_numpy(params[offset:offset + p.numel()].copy()), p, layout))
                    offset += p.numel()
            model.train()
            return model

        x = torch.from_numpy(inputs.copy()).reshape(batch, h, w, c).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(labels.astype("int64"))

        def step(model):
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            loss.backward()
            return logits, loss

        def flat(model, grad):
            return torch.cat([torch_models.to_emc(p.grad if grad else p, layout) for p, layout in model.emc_tensors]).numpy()

        model = fresh()
        logits, loss = step(model)
        grads = flat(model, True)
        running = [[m.running_mean.tolist(), m.running_var.tolist()] for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        torch.optim.SGD(model.parameters(), lr=SGD_LR).step()
        sgd = flat(model, False)
        model = fresh()
        step(model)
        torch.optim.Adam(model.parameters(), lr=ADAM_LR).step()
        adam = flat(model, False)

        fixture = {"name": name, "spec": meta["spec"], "input": meta["input"], "classes": classes, "batch": batch, "seed": meta["seed"],
                   "parameterCount": meta["parameterCount"], "tensors": [t["count"] for t in meta["tensors"]],
                   "parametersCRC32C": meta["parametersCRC32C"], "inputCRC32C": meta["inputCRC32C"],
                   "sgdLearningRate": SGD_LR, "adamLearningRate": ADAM_LR, "torch": torch.__version__,
                   "loss": loss.item(), "logits": logits.detach().reshape(-1).tolist(), "batchNormRunning": running}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(fixture, f, indent=1)
        np.concatenate([grads, sgd, adam]).astype("<f4").tofile(os.path.join(OUT, name + ".bin"))
        print(f"{name:<20} {meta['spec']:<58} {meta['parameterCount']:>6} parameters, loss {loss.item():.5f}")


if __name__ == "__main__":
    main()
