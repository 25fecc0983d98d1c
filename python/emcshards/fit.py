"""emc's fit rules in PyTorch: one trial trained and decided exactly as the native trainer decides it
(Sources/EMCTrainer/Fit.swift; the rules are written once, in docs/methods.md, "How a trial is decided").

A trial is fitted when at most ⌊n·(1 − t)⌋ samples are wrong (t the fit threshold, compared in integers); converged-unfit
when the best epoch loss of the last `patience` epochs improved on the best before them by less than `minImprovement`
and the full-batch gradient norm is below `gradientTolerance`; budget-exhausted when the budget ends first; diverged
when the loss is not finite. A model with batch normalisation is judged in evaluation mode with every batch-norm
layer's statistics recomputed over the n samples.
"""
import math
import os
import time
from decimal import Decimal
from fractions import Fraction

import numpy as np

from .philox import CounterRNG

STREAM_EPOCH_ORDER = 8
STREAM_HESSIAN = 12
THRESHOLDS = (0.99, 0.995, 0.999)
BATCH_NORM_DECISION = "eval-recomputed"
MINIMUM_EVALUATION_BATCH = 1024


class FitError(Exception):
    """A request the trainer cannot carry out, with a protocol error code (docs/torch-worker.md)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def threshold_key(t):
    return "%g" % t


def allowed_wrong(n, t):
    """⌊n·(1 − t)⌋ computed exactly from the decimal t stands for (its shortest form), as emc does."""
    if n <= 0 or t >= 1:
        return 0
    if t <= 0:
        return n
    return math.floor(n * (1 - Fraction(Decimal(repr(float(t))))))


def exact_check_slack(n):
    return max(2, n // 200)


class Budget:
    def __init__(self, epochs, min_steps=0, steps=None):
        self.epochs, self.min_steps, self.steps = int(epochs), int(min_steps), (None if steps is None else int(steps))

    @property
    def effective_min_steps(self):
        return 0 if self.steps is not None else self.min_steps

    @staticmethod
    def steps_per_epoch(n, batch, full_batch):
        return 1 if full_batch else max(1, (n + batch - 1) // batch)

    def epochs_for(self, n, batch, full_batch):
        per = self.steps_per_epoch(n, batch, full_batch)
        if self.steps is not None:
            return (self.steps + per - 1) // per
        return max(self.epochs, (self.effective_min_steps + per - 1) // per)


class OptimizerSpec:
    """The optimizer as emc sends it (every field explicit): kind, lr, schedule and their options."""

    KINDS = ("sgd", "gd", "adam", "adamw")

    def __init__(self, d):
        self.kind = d["kind"]
        if self.kind == "shampoo":
            raise FitError("unsupported", "the torch trainer has no Shampoo (torch.optim has none); train it with --trainer native")
        if self.kind not in self.KINDS:
            raise FitError("bad-request", f"unknown optimizer kind {self.kind!r}")
        self.lr = float(d["lr"])
        self.momentum = float(d.get("momentum", 0))
        self.nesterov = bool(d.get("nesterov", False))
        self.weight_decay = float(d.get("weightDecay", 0))
        self.beta1, self.beta2, self.eps = float(d.get("beta1", 0.9)), float(d.get("beta2", 0.999)), float(d.get("eps", 1e-8))
        self.schedule = d.get("schedule", "constant")
        if self.schedule not in ("constant", "cosine", "step", "plateau"):
            raise FitError("bad-request", f"unknown schedule {self.schedule!r}")
        self.step_epochs = int(d.get("stepEpochs", 30))
        self.gamma = float(d.get("gamma", 0.1))
        self.warmup = int(d.get("warmup", 0))
        self.plateau_wait = int(d.get("plateauWait", 10))
        self.plateau_drops = int(d.get("plateauDrops", 3))

    def learning_rate(self, epoch, total):
        """The rate for `epoch` (0-based; a step under a step budget) of a run of `total` (OptimizerSpec.learningRate)."""
        if self.warmup > 0 and epoch < self.warmup:
            return self.lr * (epoch + 1) / self.warmup
        if self.schedule in ("constant", "plateau"):
            return self.lr
        if self.schedule == "cosine":
            span = max(1, total - self.warmup)
            return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - self.warmup) / span))
        return self.lr * math.pow(self.gamma, float(int((epoch - self.warmup) / self.step_epochs)))

    def last_drop_epoch(self, total):
        if self.schedule != "step":
            return self.warmup
        drops = max(0, int((total - 1 - self.warmup) / self.step_epochs))
        return self.warmup + drops * self.step_epochs

    def make(self, parameters):
        """The torch.optim optimizer with the same update rule (its rate is set before every step)."""
        import torch
        if self.kind in ("sgd", "gd"):
            return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay)
        cls = torch.optim.Adam if self.kind == "adam" else torch.optim.AdamW
        return cls(parameters, lr=self.lr, betas=(self.beta1, self.beta2), eps=self.eps, weight_decay=self.weight_decay)


class Rules:
    def __init__(self, d):
        self.batch = int(d["batch"])
        self.budget = Budget(d["epochs"], d.get("minSteps", 0), d.get("steps"))
        self.fit_threshold = float(d["fitThreshold"])
        self.patience = int(d["patience"])
        self.min_improvement = float(d["minImprovement"])
        self.gradient_tolerance = float(d["gradientTolerance"])
        self.check_every = None if d.get("checkEvery") is None else int(d["checkEvery"])
        self.hessian_check = d.get("hessianCheck", "off")
        if self.hessian_check not in ("off", "converged", "final"):
            raise FitError("bad-request", f"unknown Hessian check {self.hessian_check!r}")
        self.hessian_steps = int(d.get("hessianSteps", 40))
        self.hessian_tolerance = float(d.get("hessianTolerance", 1e-3))


def lanczos(dimension, steps, seed, multiply):
    """Lanczos with full re-orthogonalisation (twice) from emc's seeded start vector, as `Lanczos.run` does: the Ritz
    values (ascending), their residual norms and the steps taken. Stops early when the Krylov space is invariant."""
    k = min(steps, dimension)
    v = CounterRNG(seed, STREAM_HESSIAN).normal_pair(np.arange(dimension, dtype=np.uint64))[0]
    basis = [v / np.sqrt(np.dot(v, v))]
    alphas, betas, scale = [], [], 0.0
    for j in range(k):
        w = np.asarray(multiply(basis[j]), dtype=np.float64)
        if not np.all(np.isfinite(w)):
            raise FitError("internal", f"the Hessian-vector product is not finite at Lanczos step {j + 1}")
        alpha = float(np.dot(w, basis[j]))
        alphas.append(alpha)
        scale = max(scale, abs(alpha))
        w = w - alpha * basis[j] - (betas[j - 1] * basis[j - 1] if j > 0 else 0)
        for _ in range(2):
            for b in basis:
                w = w - np.dot(w, b) * b
        beta = float(np.sqrt(np.dot(w, w)))
        betas.append(beta)
        if j == k - 1 or beta <= 1e-10 * max(scale, 1e-300):
            break
        basis.append(w / beta)
    m = len(alphas)
    t = np.diag(alphas) + np.diag(betas[:m - 1], 1) + np.diag(betas[:m - 1], -1)
    values, vectors = np.linalg.eigh(t)
    residuals = np.abs(betas[-1] * vectors[m - 1, :])
    return values.tolist(), residuals.tolist(), m


def epoch_order(seed, epoch, count):
    """The samples' order in `epoch`: emc's `epochOrder(seed:epoch:count:)`, the same permutation."""
    return CounterRNG(seed, STREAM_EPOCH_ORDER).derived(epoch).permutation(count)


def decimate(values, points):
    if len(values) <= points or points <= 1:
        return list(values)
    return [values[k * (len(values) - 1) // (points - 1)] for k in range(points)]


class _LoopState:
    def __init__(self, first_check):
        self.epoch = 0
        self.steps = 0
        self.history = []
        self.scale = 1.0
        self.drops = []
        self.last_plateau_drop = 0
        self.next_check = first_check
        self.plateau_note = ""
        self.threshold_epochs = {}

    def reached(self, wrong, n, epoch):
        for t in THRESHOLDS:
            key = threshold_key(t)
            if key not in self.threshold_epochs and wrong <= allowed_wrong(n, t):
                self.threshold_epochs[key] = epoch

    def improvement(self, window):
        if len(self.history) <= window:
            return None
        recent, before = min(self.history[-window:]), min(self.history[:-window])
        return (before - recent) / before if before > 0 else 0.0

    def can_improve(self, window):
        before = self.history[:-window] if window > 0 else self.history
        return bool(before) and min(before) > 0

    def plateau_step(self, spec, min_improvement, patience):
        wait = spec.plateau_wait
        if self.epoch - self.last_plateau_drop < wait:
            return
        gain = self.improvement(wait)
        if gain is None or (self.can_improve(wait) and gain >= min_improvement):
            return
        self.scale *= spec.gamma
        self.drops.append(self.epoch)
        self.last_plateau_drop = self.epoch
        self.next_check = self.epoch + patience

    def convergence_check(self, patience, min_improvement):
        """None (not due), ("improving",) or ("plateaued", gain)."""
        if self.epoch < self.next_check:
            return None
        gain = self.improvement(patience)
        if gain is None:
            return None
        return ("plateaued", gain) if gain < min_improvement else ("improving",)


class Trial:
    """One trial: a model (already initialised, on its device), the n samples as tensors on that device, the optimizer
    and the rules. `fit()` trains and returns the outcome as emc's FitOutcome fields."""

    def __init__(self, model, inputs, labels, spec, rules, seed, eval_batch, history_points=100, progress=None, precision="float32"):
        import torch
        if precision not in ("float32", "bf16"):
            raise FitError("bad-request", f"unknown precision {precision!r} (float32 or bf16)")
        self.precision = precision
        self.torch = torch
        self.model, self.x, self.y = model, inputs, labels
        self.spec, self.rules, self.seed = spec, rules, int(seed)
        self.n = int(labels.shape[0])
        self.eval_batch = int(eval_batch)
        self.history_points = history_points
        self.progress = progress
        self.device = inputs.device
        self.batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        # Dropout (in a researcher's model): an exact pass that judges runs in evaluation mode, without it.
        self.dropouts = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
        self.parameters = [p for p in model.parameters() if p.requires_grad]

    # Passes ---------------------------------------------------------------------------------------------------------

    def _pass(self, gradient):
        """One pass in fixed order, in evaluation-batch chunks: the mean loss and the wrong count; with `gradient`, the
        exact full-batch gradient (mean over the n samples) in every parameter's .grad."""
        torch, F = self.torch, self.torch.nn.functional
        n = self.n
        if gradient:
            for p in self.parameters:
                p.grad = None
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        wrong = torch.zeros((), dtype=torch.int64, device=self.device)
        with torch.set_grad_enabled(gradient):
            for start in range(0, n, self.eval_batch):
                if self.heartbeat:
                    self.heartbeat(None, None)
                xb, yb = self.x[start:start + self.eval_batch], self.y[start:start + self.eval_batch]
                logits = self.model(xb)
                loss = F.cross_entropy(logits, yb, reduction="sum")
                if gradient:
                    (loss / n).backward()
                loss_sum += loss.detach().double()
                wrong += (logits.detach().argmax(1) != yb).sum()
        return loss_sum.item() / n, int(wrong.item())

    def recompute_normalization(self):
        """Every batch-norm layer's mean and (biased) variance over the n samples, as the layer's input is in a training
        mode pass in evaluation-batch chunks; leaves the model in evaluation mode with them."""
        torch = self.torch
        sums = {}

        def hook(module, args):
            x = args[0].detach().double()
            dims = [d for d in range(x.dim()) if d != 1]
            s = sums.setdefault(module, [0.0, 0.0, 0])
            s[0] = s[0] + x.sum(dims)
            s[1] = s[1] + (x * x).sum(dims)
            s[2] += x.numel() // x.shape[1]

        handles = [m.register_forward_pre_hook(hook) for m in self.batch_norms]
        try:
            self.model.train()
            self._pass(False)
        finally:
            for h in handles:
                h.remove()
        with torch.no_grad():
            for m, (total, squares, count) in sums.items():
                if count > 0:
                    mean = total / count
                    m.running_mean.copy_(mean.float())
                    m.running_var.copy_(torch.clamp(squares / count - mean * mean, min=0).float())
        self.model.eval()

    def full_pass(self, gradient):
        if gradient:
            return self._pass(True)
        try:
            if self.batch_norms:
                self.recompute_normalization()
            else:
                self.model.eval()
            return self._pass(False)
        finally:
            self.model.train()

    def judged(self, training_pass):
        return self.full_pass(False) if self.batch_norms or self.dropouts else training_pass

    def gradient_norm(self):
        total = 0.0
        for p in self.parameters:
            if p.grad is not None:
                total += float(p.grad.detach().double().pow(2).sum().item())
        return math.sqrt(total)

    def train_epoch(self, epoch, optimizer, lr, state, lr_at_step=None):
        """One pass in the epoch's order; each batch judged before its own update. Mean loss and wrong count. The
        per-batch losses and predictions stay on the device until the epoch ends (one synchronisation per epoch)."""
        torch, F = self.torch, self.torch.nn.functional
        n, batch = self.n, self.rules.batch
        order = torch.from_numpy(epoch_order(self.seed, epoch, n)).to(self.device)
        losses, predictions = [], []
        group = optimizer.param_groups[0]
        max_steps = self.rules.budget.steps
        start = 0
        while start < n:
            idx = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            if self.precision == "bf16":
                with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                    logits = self.model(self.x[idx])
                loss = F.cross_entropy(logits.float(), self.y[idx])
            else:
                logits = self.model(self.x[idx])
                loss = F.cross_entropy(logits, self.y[idx])
            loss.backward()
            group["lr"] = lr_at_step(state.steps) if lr_at_step else lr
            optimizer.step()
            state.steps += 1
            losses.append(loss.detach())
            predictions.append(logits.detach().argmax(1))
            start += idx.shape[0]
            if max_steps is not None and state.steps >= max_steps:
                break
            if self.heartbeat:
                self.heartbeat(epoch, state.steps)
        sizes = torch.full((len(losses),), float(batch), dtype=torch.float64, device=self.device)
        sizes[-1] = start - batch * (len(losses) - 1)
        loss_sum = float((torch.stack(losses).double() * sizes).sum().item())
        wrong = int((torch.cat(predictions) != self.y[order[:start]]).sum().item())
        return loss_sum / max(1, start), wrong + (n - start)

    heartbeat = None
    #: Called at the start of every epoch after the first of this run (after its checkpoint): a test seam.
    before_epoch = None
    #: {"path", "interval", "identity"}: save the trial's state every `interval` seconds and resume from it.
    checkpoint = None

    # Checkpoints ----------------------------------------------------------------------------------------------------

    def _save(self, state, optimizer, elapsed):
        """The whole state between two epochs (the loop's, the parameters, the optimizer's, the random generators'),
        written to a temporary file and renamed over the checkpoint."""
        torch = self.torch
        loop = dict(vars(state))
        loop["elapsed"] = elapsed
        payload = {"format": "emc-torch-checkpoint/1", "identity": self.checkpoint["identity"], "loop": loop,
                   "model": self.model.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            payload["cudaRng"] = torch.cuda.get_rng_state(self.device)
        path = self.checkpoint["path"]
        temporary = f"{path}.tmp-{os.getpid()}"
        torch.save(payload, temporary)
        os.replace(temporary, path)

    def _resume(self, state, optimizer, epoch_budget):
        """Restores the trial's checkpoint when there is one of this very trial (its identity) in a state a run reaches;
        anything else (none, another trial's, a damaged file) starts afresh, which is always correct. The seconds the
        earlier runs spent."""
        if not self.checkpoint or not os.path.exists(self.checkpoint["path"]):
            return 0.0
        torch = self.torch
        try:
            saved = torch.load(self.checkpoint["path"], map_location=self.device, weights_only=True)
            loop = saved["loop"]
            if saved.get("format") != "emc-torch-checkpoint/1" or saved.get("identity") != self.checkpoint["identity"]:
                return 0.0
            if not (1 <= int(loop["epoch"]) <= epoch_budget and len(loop["history"]) == loop["epoch"]):
                return 0.0
            self.model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["rng"])
            if "cudaRng" in saved and self.device.type == "cuda":
                torch.cuda.set_rng_state(saved["cudaRng"], self.device)
        except Exception:  # a damaged or foreign file: start afresh
            return 0.0
        elapsed = float(loop.pop("elapsed", 0.0))
        for key, value in loop.items():
            setattr(state, key, value)
        return elapsed

    def _forget_checkpoint(self):
        """The trial is decided: its checkpoint has served."""
        if self.checkpoint and os.path.exists(self.checkpoint["path"]):
            os.remove(self.checkpoint["path"])

    # The Hessian check ----------------------------------------------------------------------------------------------

    def hessian_vector_product(self, v):
        """H·v of the mean loss over the n samples at the current parameters (v flat, in `self.parameters`' order), by
        double backward in evaluation-batch chunks."""
        torch, F = self.torch, self.torch.nn.functional
        vs, offset = [], 0
        for p in self.parameters:
            vs.append(torch.as_tensor(v[offset:offset + p.numel()], dtype=p.dtype, device=p.device).view_as(p))
            offset += p.numel()
        total = [torch.zeros_like(p) for p in self.parameters]
        for start in range(0, self.n, self.eval_batch):
            loss = F.cross_entropy(self.model(self.x[start:start + self.eval_batch]), self.y[start:start + self.eval_batch], reduction="sum") / self.n
            grads = torch.autograd.grad(loss, self.parameters, create_graph=True)
            dot = sum((g * u).sum() for g, u in zip(grads, vs))
            for acc, h in zip(total, torch.autograd.grad(dot, self.parameters)):
                acc += h
        return torch.cat([h.reshape(-1) for h in total]).double().cpu().numpy()

    def check_hessian(self):
        """The native check (`Trainer.checkHessian`): Lanczos on the full-batch loss Hessian at the final parameters, the
        model judged as its fit was (batch norm with the n samples' statistics, dropout off)."""
        rules = self.rules
        if self.batch_norms:
            self.recompute_normalization()
        else:
            self.model.eval()
        try:
            start = time.monotonic()
            self._pass(True)
            pass_seconds = max(1e-9, time.monotonic() - start)
            products = [0]

            def multiply(v):
                products[0] += 1
                return self.hessian_vector_product(v)

            dimension = sum(p.numel() for p in self.parameters)
            ritz, residuals, steps = lanczos(dimension, rules.hessian_steps, self.seed, multiply)
        finally:
            self.model.train()
        seconds = time.monotonic() - start
        low, high = ritz[0], ritz[-1]
        verdict = "saddle" if low < -rules.hessian_tolerance * abs(high) else "minimum"
        return {"verdict": verdict, "lambdaMin": low, "lambdaMax": high, "tolerance": rules.hessian_tolerance, "steps": steps,
                "ritzValues": ritz, "residuals": residuals, "samples": self.n, "products": products[0], "seconds": seconds,
                "fullPasses": seconds / pass_seconds, "singleBatch": self.n <= self.eval_batch}

    def fit(self):
        """Trains and decides; then, as the rules ask, checks the final parameters' Hessian: a converged-unfit trial whose
        Hessian has a clearly negative eigenvalue becomes a saddle."""
        outcome = self.train()
        mode = self.rules.hessian_check
        checked = outcome["result"] != "diverged" if mode == "final" else (mode == "converged" and outcome["result"] == "converged-unfit")
        if not checked:
            return outcome
        check = self.check_hessian()
        outcome["hessian"] = check
        outcome["seconds"] += check["seconds"]
        if outcome["result"] == "converged-unfit" and check["verdict"] == "saddle":
            outcome["result"] = "saddle"
            outcome["reason"] += ("; but the loss Hessian has λ_min = %.3g < −%g·λ_max (λ_max = %.3g): a saddle, not a minimum (inconclusive)"
                                  % (check["lambdaMin"], check["tolerance"], check["lambdaMax"]))
        elif outcome["result"] == "converged-unfit":
            outcome["reason"] += "; Hessian λ_min = %.3g ≥ −%g·λ_max (λ_max = %.3g): a minimum" % (check["lambdaMin"], check["tolerance"], check["lambdaMax"])
        return outcome

    # The loop -------------------------------------------------------------------------------------------------------

    def train(self):
        started = time.monotonic()
        spec, rules, n = self.spec, self.rules, self.n
        allowed = allowed_wrong(n, rules.fit_threshold)
        optimizer = spec.make(self.parameters)
        full_batch = spec.kind == "gd"
        per_epoch = Budget.steps_per_epoch(n, rules.batch, full_batch)
        epoch_budget = rules.budget.epochs_for(n, rules.batch, full_batch)
        step_schedule = rules.budget.steps
        if step_schedule is not None:
            last_drop = spec.last_drop_epoch(step_schedule) // per_epoch
        else:
            last_drop = spec.last_drop_epoch(epoch_budget)

        def lr_at_step(step):
            return spec.learning_rate(step, step_schedule or 1)

        state = _LoopState(last_drop + rules.patience)
        bn = BATCH_NORM_DECISION if self.batch_norms else None
        prior = self._resume(state, optimizer, epoch_budget)
        first_epoch = state.epoch
        last_save = time.monotonic()

        def outcome(result, reason, epochs, loss, wrong, gradient_norm):
            if result == "fitted":
                state.reached(wrong, n, epochs)
            self._forget_checkpoint()
            return {"resumedFromEpoch": first_epoch if first_epoch > 0 else None, "priorSeconds": prior,"result": result, "reason": reason, "samples": n, "epochs": epochs, "steps": state.steps,
                    "finalLoss": loss, "trainAccuracy": (n - wrong) / n, "wrong": wrong, "gradientNorm": gradient_norm,
                    "lossHistory": decimate(state.history, self.history_points), "seconds": time.monotonic() - started,
                    "thresholdEpochs": dict(state.threshold_epochs), "learningRateDrops": list(state.drops),
                    "batchNorm": bn}

        self.model.train()
        while state.epoch < epoch_budget:
            epoch = state.epoch
            if epoch > first_epoch:
                if self.checkpoint and time.monotonic() - last_save >= self.checkpoint["interval"]:
                    self._save(state, optimizer, prior + time.monotonic() - started)
                    last_save = time.monotonic()
                if self.before_epoch:
                    self.before_epoch(epoch)
            if step_schedule is None:
                lr = state.scale * spec.learning_rate(epoch, epoch_budget)
            else:
                lr = state.scale * lr_at_step(state.steps)
            if full_batch:
                epoch_loss, epoch_wrong = self.full_pass(True)
                state.reached(epoch_wrong, n, epoch)
                if not math.isfinite(epoch_loss):
                    state.history.append(epoch_loss)
                    return outcome("diverged", f"loss became {_swift_double(epoch_loss)} in epoch {epoch + 1}", epoch + 1, epoch_loss, epoch_wrong, None)
                # Every epoch near a fit, or (checking every K steps) at each multiple of K.
                if rules.check_every:
                    due = state.steps > 0 and state.steps % rules.check_every == 0
                else:
                    due = epoch_wrong <= allowed + (exact_check_slack(n) if self.batch_norms or self.dropouts else 0)
                if due:
                    norm = self.gradient_norm()
                    loss, wrong = self.judged((epoch_loss, epoch_wrong))
                    if wrong <= allowed:
                        state.history.append(loss)
                        return outcome("fitted", f"all but {wrong} of {n} samples correct (allowed {allowed}) after {epoch} epochs",
                                       epoch, loss, wrong, norm)
                optimizer.param_groups[0]["lr"] = lr
                optimizer.step()
                state.steps += 1
            else:
                scale = state.scale
                per_step = None if step_schedule is None else (lambda step: scale * lr_at_step(step))
                steps_before = state.steps
                epoch_loss, epoch_wrong = self.train_epoch(epoch, optimizer, lr, state, per_step)
                state.reached(epoch_wrong, n, epoch + 1)
                if not math.isfinite(epoch_loss):
                    state.history.append(epoch_loss)
                    return outcome("diverged", f"loss became {_swift_double(epoch_loss)} in epoch {epoch + 1}", epoch + 1, epoch_loss, epoch_wrong, None)
                # Checking every K steps: the exact check at the end of each epoch in which the step count reached a
                # multiple of K; otherwise when the training pass's count is near a fit.
                if rules.check_every:
                    due = steps_before // rules.check_every < state.steps // rules.check_every
                else:
                    due = epoch_wrong <= allowed + exact_check_slack(n)
                if due:
                    loss, wrong = self.full_pass(False)
                    if wrong <= allowed:
                        state.history.append(loss)
                        return outcome("fitted", f"all but {wrong} of {n} samples correct (allowed {allowed}) after {epoch + 1} epochs",
                                       epoch + 1, loss, wrong, None)
            state.history.append(epoch_loss)
            state.epoch = epoch + 1
            if self.progress:
                self.progress({"epoch": epoch + 1, "loss": epoch_loss, "wrong": epoch_wrong, "learningRate": lr, "steps": state.steps})
            if rules.budget.steps is not None and state.steps >= rules.budget.steps:
                break
            if spec.schedule == "plateau" and len(state.drops) < spec.plateau_drops:
                state.plateau_step(spec, rules.min_improvement, rules.patience)
                continue
            check = state.convergence_check(rules.patience, rules.min_improvement)
            if check is None:
                continue
            if check[0] == "plateaued":
                training_pass = self.full_pass(True)
                norm = self.gradient_norm()
                if norm < rules.gradient_tolerance:
                    loss, wrong = self.judged(training_pass)
                    return outcome("converged-unfit",
                                   "loss plateaued (improved %.2g%% over the last %d epochs) with full gradient norm %.3g < %.3g; %d of %d samples wrong"
                                   % (check[1] * 100, rules.patience, norm, rules.gradient_tolerance, wrong, n),
                                   epoch + 1, loss, wrong, norm)
                state.plateau_note = "; the loss had plateaued but the full gradient norm was %.3g ≥ %.3g" % (norm, rules.gradient_tolerance)
            state.next_check = epoch + 1 + rules.patience
        training_pass = self.full_pass(True)
        norm = self.gradient_norm()
        loss, wrong = self.judged(training_pass)
        epochs = len(state.history)
        if wrong <= allowed:
            return outcome("fitted", f"all but {wrong} of {n} samples correct at the end of the budget", epochs, loss, wrong, norm)
        budget = f"{rules.budget.steps}-step" if rules.budget.steps is not None else f"{epoch_budget}-epoch"
        return outcome("budget-exhausted", f"ran out of the {budget} budget with {wrong} of {n} samples wrong{state.plateau_note}: inconclusive",
                       epochs, loss, wrong, norm)

    def evaluate(self, inputs, labels):
        """Wrong count of the trained model on other samples (the test split), judged as the fit was: a batch-norm
        model with its statistics recomputed over the n training samples."""
        torch = self.torch
        if self.batch_norms:
            self.recompute_normalization()
        else:
            self.model.eval()
        wrong = 0
        try:
            with torch.no_grad():
                for start in range(0, labels.shape[0], self.eval_batch):
                    logits = self.model(inputs[start:start + self.eval_batch])
                    wrong += int((logits.argmax(1) != labels[start:start + self.eval_batch]).sum().item())
        finally:
            self.model.train()
        return wrong


def _swift_double(v):
    """A non-finite Double as Swift prints it in a reason ("nan", "inf", "-inf")."""
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
