"""The torch trainer's worker (emcshards.worker) with a real PyTorch: its protocol, each decision of the fit rules, its
precision and determinism, and the parity of every model family with emc's native models."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import emc
from emcshards import fit as rules_module
from emcshards.models import build, from_emc, to_emc

PROTOCOL = 1
SGD = {"kind": "sgd", "lr": 0.01, "momentum": 0.9}
RULES = {"batch": 128, "epochs": 300, "minSteps": 2000, "fitThreshold": 1.0, "patience": 20, "minImprovement": 1e-3, "gradientTolerance": 1e-3}


class Worker:
    """A worker process spoken to as emc speaks to it."""

    def __init__(self, tmp_path, env=None):
        self.log = open(tmp_path / f"worker-{os.getpid()}-{id(self)}.log", "w+")
        self.process = subprocess.Popen([sys.executable, "-m", "emcshards.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, env={**os.environ, **(env or {})})
        self.next_id = 1

    def send(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def call(self, method, params=None):
        """The final message for one request, and the progress notes before it."""
        request_id = self.next_id
        self.next_id += 1
        self.send(json.dumps({"id": request_id, "method": method, "params": params or {}}))
        notes = []
        while True:
            line = self.process.stdout.readline()
            assert line, f"the worker closed its output; stderr: {self.stderr()}"
            message = json.loads(line)
            assert message["id"] == request_id
            if "progress" in message:
                notes.append(message["progress"])
                continue
            return message, notes

    def stderr(self):
        self.log.seek(0)
        return self.log.read()[-2000:]

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


@pytest.fixture
def worker(tmp_path):
    w = Worker(tmp_path)
    assert "result" in w.call("hello", {"protocol": PROTOCOL, "client": "test"})[0]
    yield w
    w.close()


def fit_params(data, n, model="mlp:width=16,depth=2,act=relu", optimizer=SGD, rules=None, trial_seed=7, **extra):
    params = {"data": data, "n": n, "seed": 0, "trialSeed": trial_seed, "normalize": "standard", "model": model, "classes": 10,
              "optimizer": optimizer, "rules": {**RULES, **(rules or {})}, "evalBatch": 1024, "evaluateTest": False}
    params.update(extra)
    return params


# The protocol ---------------------------------------------------------------------------------------------------------

def test_the_handshake_names_both_sides_versions(tmp_path):
    w = Worker(tmp_path)
    answer, _ = w.call("hello", {"protocol": PROTOCOL, "client": "emc test"})
    result = answer["result"]
    assert result["protocol"] == PROTOCOL
    assert result["worker"].startswith("emcshards ")
    assert result["torch"] == torch.__version__
    w.close()
    assert w.process.returncode == 0


def test_a_client_of_another_protocol_version_is_refused_with_a_code(tmp_path):
    w = Worker(tmp_path)
    answer, _ = w.call("hello", {"protocol": PROTOCOL + 1})
    assert answer["error"]["code"] == "protocol-version"
    assert f"protocol {PROTOCOL}" in answer["error"]["message"]
    w.close()


def test_a_line_that_is_not_json_and_an_unknown_method_are_errors_and_the_worker_goes_on(worker):
    worker.send("this is not json")
    message = json.loads(worker.process.stdout.readline())
    assert message["id"] is None and message["error"]["code"] == "bad-request"
    answer, _ = worker.call("train-faster")
    assert answer["error"]["code"] == "bad-request"
    assert "result" in worker.call("hello", {"protocol": PROTOCOL})[0]


def test_a_request_without_its_fields_is_a_bad_request(worker, sets):
    answer, _ = worker.call("fit", {"data": sets["lz4"]})
    assert answer["error"]["code"] == "bad-request"


def test_shampoo_is_refused_clearly(worker, sets):
    answer, _ = worker.call("fit", fit_params(sets["lz4"], 50, optimizer={"kind": "shampoo", "lr": 0.001}))
    assert answer["error"]["code"] == "unsupported"
    assert "Shampoo" in answer["error"]["message"]


def test_a_damaged_data_folder_is_an_error_value_naming_it(worker, tmp_path):
    answer, _ = worker.call("fit", fit_params(str(tmp_path / "nowhere"), 50))
    assert answer["error"]["code"] == "data"
    assert "nowhere" in answer["error"]["message"]


def test_shutdown_answers_then_exits(tmp_path):
    w = Worker(tmp_path)
    assert w.call("shutdown")[0] == {"id": 1, "result": {}}
    assert w.process.wait(timeout=30) == 0


# The decisions --------------------------------------------------------------------------------------------------------

def test_fitted_with_its_evidence_and_the_guarantees_that_held(worker, sets):
    answer, notes = worker.call("fit", fit_params(sets["lz4"], 100, evaluateTest=True))
    o = answer["result"]
    assert o["result"] == "fitted" and o["wrong"] == 0 and o["trainAccuracy"] == 1.0 and o["samples"] == 100
    assert o["reason"].startswith("all but 0 of 100 samples correct (allowed 0) after ")
    assert set(o["thresholdEpochs"]) == {"0.99", "0.995", "0.999"}
    assert o["epochs"] == notes[-1]["epoch"] + 1 and len(notes) == o["epochs"] - 1
    assert 0 < o["testAccuracy"] < 1
    t = o["trainer"]
    assert t["kind"] == "torch" and t["precision"] == "float32" and t["deterministic"] is True and t["tf32"] is False
    assert t["threads"] == 1 and t["device"] == "cpu"
    assert t["parameters"] == 28 * 28 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10


def test_converged_unfit_when_the_loss_plateaus_with_a_small_full_gradient(worker, sets):
    answer, _ = worker.call("fit", fit_params(sets["lz4"], 200, model="mlp:width=1,depth=1,act=relu", optimizer={"kind": "gd", "lr": 0.5},
                                              rules={"patience": 5, "minImprovement": 0.5, "gradientTolerance": 1e9}))
    o = answer["result"]
    assert o["result"] == "converged-unfit", o["reason"]
    assert o["reason"].startswith("loss plateaued (improved ")
    assert o["gradientNorm"] is not None and o["wrong"] > 0
    assert o["steps"] == o["epochs"]  # full-batch GD: one step per epoch


def test_budget_exhausted_is_inconclusive(worker, sets):
    answer, _ = worker.call("fit", fit_params(sets["lz4"], 500, rules={"epochs": 2, "minSteps": 0}))
    o = answer["result"]
    assert o["result"] == "budget-exhausted"
    assert "ran out of the 2-epoch budget" in o["reason"] and o["reason"].endswith(": inconclusive")
    assert o["epochs"] == 2 and o["steps"] == 2 * math.ceil(500 / 128)


def test_a_step_budget_ends_at_its_step(worker, sets):
    answer, _ = worker.call("fit", fit_params(sets["lz4"], 500, rules={"steps": 5}))
    o = answer["result"]
    assert o["result"] == "budget-exhausted" and o["steps"] == 5 and "5-step budget" in o["reason"]


def test_diverged_when_the_loss_is_not_finite(worker, sets):
    answer, _ = worker.call("fit", fit_params(sets["lz4"], 200, optimizer={"kind": "sgd", "lr": 1e12, "momentum": 0.9}))
    o = answer["result"]
    assert o["result"] == "diverged", o["reason"]
    assert o["finalLoss"] in ("nan", "inf")


def test_a_batch_norm_model_is_judged_with_statistics_recomputed_over_the_samples(worker, sets):
    answer, _ = worker.call("fit", fit_params(sets["lz4"], 60, model="resnet:width=0.25,blocks=1,stages=2,shortcut=projection,act=relu",
                                              rules={"epochs": 3, "minSteps": 0}))
    assert answer["result"]["batchNorm"] == "eval-recomputed"


def test_the_same_request_gives_the_same_outcome_in_another_worker(tmp_path, sets):
    outcomes = []
    for _ in range(2):
        w = Worker(tmp_path)
        w.call("hello", {"protocol": PROTOCOL})
        o = w.call("fit", fit_params(sets["lz4"], 150, trial_seed=2**64 - 5))[0]["result"]
        o.pop("seconds")
        outcomes.append(o)
        w.close()
    assert outcomes[0] == outcomes[1]


# The rules, unit by unit ----------------------------------------------------------------------------------------------

def test_allowed_wrong_is_exact_in_decimals():
    assert rules_module.allowed_wrong(10, 0.9) == 1
    assert rules_module.allowed_wrong(1000, 0.995) == 5
    assert rules_module.allowed_wrong(199, 0.995) == 0
    assert rules_module.allowed_wrong(100, 1.0) == 0


def test_schedules_match_emcs_definitions():
    spec = rules_module.OptimizerSpec({"kind": "sgd", "lr": 0.1, "schedule": "cosine", "warmup": 2})
    assert spec.learning_rate(0, 10) == pytest.approx(0.05)
    assert spec.learning_rate(2, 10) == pytest.approx(0.1)
    assert spec.learning_rate(10, 10) == pytest.approx(0.0, abs=1e-12)
    step = rules_module.OptimizerSpec({"kind": "sgd", "lr": 1.0, "schedule": "step", "stepEpochs": 3, "gamma": 0.5})
    assert [step.learning_rate(e, 10) for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]
    assert step.last_drop_epoch(10) == 9


def test_recomputed_statistics_are_the_mean_and_biased_variance_over_every_sample():
    torch.manual_seed(0)
    model = build("resnet:width=0.25,blocks=1,stages=1,shortcut=projection,act=relu", (8, 8, 3), 5)
    x = torch.randn(37, 3, 8, 8)
    y = torch.randint(0, 5, (37,))
    spec = rules_module.OptimizerSpec(SGD)
    trial = rules_module.Trial(model, x, y, spec, rules_module.Rules(RULES), seed=1, eval_batch=10)
    trial.recompute_normalization()
    conv, bn = model[0], model[1]
    with torch.no_grad():
        h = conv(x).double()
    assert torch.allclose(bn.running_mean.double(), h.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var.double(), h.var((0, 2, 3), unbiased=False), atol=1e-5)
    assert not model.training


# Parity with the native models ----------------------------------------------------------------------------------------

FAMILIES = [
    ("mlp", "mlp:width=8,depth=2,act=tanh", "4x4x3"),
    ("cnn", "cnn:channels=4,layers=2,fc=8", "8x8x3"),
    ("resnet-projection", "resnet:width=0.25,blocks=1,stages=2", "8x8x3"),
    ("resnet-a", "resnet:width=0.25,blocks=1,stages=2,shortcut=a", "8x8x3"),
    ("resnet-conv3", "resnet:width=0.25,blocks=1,stages=2,shortcut=conv3", "8x8x3"),
    ("efficientnet", "efficientnet:width=0.05,depth=0.1,stages=3", "8x8x3"),
    ("vit-cls", "vit:dim=16,depth=1,heads=2,patch=4,mlp=2", "8x8x3"),
    ("vit-mean", "vit:dim=8,depth=2,heads=2,patch=4,mlp=2,pool=mean", "8x8x3"),
]


def exported_model(folder, meta, classes, batch):
    """The spec built in torch with the parameters `emc bench export-torch` wrote, and its batch (NCHW inputs, labels)."""
    params = np.fromfile(folder / "params.bin", dtype="<f4")
    inputs = np.fromfile(folder / "input.bin", dtype="<f4")
    labels = np.fromfile(folder / "labels.bin", dtype="<i4")
    h, w, c = meta["input"]
    model = build(meta["spec"], (h, w, c), classes)
    offset = 0
    with torch.no_grad():
        for p, layout in model.emc_tensors:
            p.copy_(from_emc(torch.from_numpy(params[offset:offset + p.numel()].copy()), p, layout))
            offset += p.numel()
    x = torch.empty((batch, c, h, w)).copy_(torch.from_numpy(inputs.copy()).reshape(batch, h, w, c).permute(0, 3, 1, 2))
    return model, x, torch.from_numpy(labels.astype(np.int64))


@pytest.mark.parametrize("name,spec,shape", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_is_the_native_model_in_torch(tmp_path, name, spec, shape):
    """The same parameter count and tensors; from emc's parameters, the same logits and the same gradients."""
    classes, batch = 5, 4
    emc("bench", "export-torch", "--model", spec, "--input", shape, "--classes", classes, "--batch", batch, "--out", tmp_path, "--force")
    meta = json.load(open(tmp_path / "meta.json"))
    native_logits = np.fromfile(tmp_path / "logits.bin", dtype="<f4")
    native_gradients = np.fromfile(tmp_path / "gradients.bin", dtype="<f4")
    model, x, y = exported_model(tmp_path, meta, classes, batch)
    assert sum(p.numel() for p in model.parameters()) == meta["parameterCount"]
    assert [p.numel() for p, _ in model.emc_tensors] == [t["count"] for t in meta["tensors"]]
    model.train()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    np.testing.assert_allclose(logits.detach().numpy().reshape(-1), native_logits, rtol=1e-4, atol=1e-5)
    assert loss.item() == pytest.approx(meta["loss"], rel=1e-5)
    gradients = torch.cat([to_emc(p.grad, layout) for p, layout in model.emc_tensors]).numpy()
    scale = max(1e-6, float(np.abs(native_gradients).max()))
    np.testing.assert_allclose(gradients, native_gradients, rtol=0, atol=2e-4 * scale)


HESSIAN_CASES = [
    ("mlp", "mlp:width=3,depth=1,act=tanh", "4x4x2", 5, 8),
    ("resnet", "resnet:width=0.125,blocks=1,stages=1", "4x4x2", 3, 6),
]


@pytest.mark.parametrize("name,spec,shape,classes,batch", HESSIAN_CASES, ids=[c[0] for c in HESSIAN_CASES])
def test_the_hessian_check_finds_the_native_trainers_extreme_eigenvalues(tmp_path, name, spec, shape, classes, batch):
    """From the same parameters and samples, Lanczos run to the full dimension on each side: the exact extreme
    eigenvalues of the mean loss's Hessian (a batch-norm model with its statistics recomputed over the samples)."""
    meta_probe = tmp_path / "probe"
    emc("bench", "export-torch", "--model", spec, "--input", shape, "--classes", classes, "--batch", batch, "--out", meta_probe, "--force")
    dimension = json.load(open(meta_probe / "meta.json"))["parameterCount"]
    emc("bench", "export-torch", "--model", spec, "--input", shape, "--classes", classes, "--batch", batch, "--out", tmp_path, "--force",
        "--hessian-steps", dimension)
    meta = json.load(open(tmp_path / "meta.json"))
    native = meta["hessian"]
    model, x, y = exported_model(tmp_path, meta, classes, batch)
    rules = rules_module.Rules({**RULES, "hessianCheck": "final", "hessianSteps": dimension})
    trial = rules_module.Trial(model, x, y, rules_module.OptimizerSpec(SGD), rules, seed=meta["seed"], eval_batch=batch)
    check = trial.check_hessian()
    scale = abs(native["lambdaMax"])
    assert check["steps"] == native["steps"]
    assert check["lambdaMax"] == pytest.approx(native["lambdaMax"], abs=1e-3 * scale)
    assert check["lambdaMin"] == pytest.approx(native["lambdaMin"], abs=1e-3 * scale)
    assert check["verdict"] == native["verdict"]


def test_a_researchers_model_is_described_and_trained_with_its_keywords(worker, sets):
    spec = "py:" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "skip_lenet.py") + ":make_lenet,dropout=0.25,hidden=8,width=2"
    described = worker.call("describe", {"model": spec, "data": sets["lz4"], "classes": 10})[0]["result"]
    # conv1 1·2·25 + 2, conv2 2·2·9 + 2, fc1 2·7·7·8 + 8, fc2 8·10 + 10 (28×28×1 images)
    assert described["parameters"] == 52 + 38 + 792 + 90
    assert len(described["source"]) == 64
    o = worker.call("fit", fit_params(sets["lz4"], 60, model=spec, modelSource=described["source"], rules={"epochs": 5, "minSteps": 0}))[0]["result"]
    assert o["trainer"]["parameters"] == described["parameters"] and o["samples"] == 60
    wrong = worker.call("fit", fit_params(sets["lz4"], 60, model=spec, modelSource="0" * 64))[0]
    assert wrong["error"]["code"] == "model" and "changed since the search began" in wrong["error"]["message"]


def test_checking_every_k_steps_decides_only_at_an_epoch_that_reached_a_multiple(worker, sets):
    """The same cadence rule as the native trainer's (docs/methods.md): the fit is checked at the end of each epoch in
    which the step count reached a multiple of K."""
    k, batch, n = 20, 8, 64
    answer, _ = worker.call("fit", fit_params(sets["lz4"], n, optimizer={"kind": "adam", "lr": 0.01}, rules={"batch": batch, "checkEvery": k}))
    o = answer["result"]
    assert o["result"] == "fitted", o["reason"]
    per_epoch = n // batch
    assert o["steps"] == o["epochs"] * per_epoch
    assert (o["steps"] - per_epoch) // k < o["steps"] // k
