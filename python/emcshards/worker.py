"""emc's torch trainer: a long-lived worker that trains the trials an emc search hands it.

    python -m emcshards.worker

emc starts one per job slot and speaks JSON lines on stdin and stdout (docs/torch-worker.md): a handshake with both
sides' protocol versions, then `fit` requests, each answered by progress notifications and one result or one error
value with a code. Everything else the process prints goes to stderr, which emc keeps for its error messages.

The worker exits when its stdin closes, on a `shutdown` request, or when emc (its parent) is gone.
"""
import json
import math
import os
import platform
import sys
import threading
import time
import traceback

PROTOCOL = 1
WORKER = "emcshards"


def _version():
    from . import __version__
    return f"{WORKER} {__version__}"


def _clean(value):
    """JSON-safe: non-finite floats as the strings emc's records use ("nan", "inf", "-inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class Channel:
    """The protocol's side of stdout: one JSON object per line, flushed at once."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, message):
        line = json.dumps(_clean(message), separators=(",", ":"), allow_nan=False)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def error(self, request_id, code, message):
        self.send({"id": request_id, "error": {"code": code, "message": message}})


def _watch_parent(parent):
    """Exits when emc is gone (killed, or crashed): a worker never outlives the search that started it."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(70)


class Faults:
    """Failures on purpose, for emc's tests of its failure handling (EMC_WORKER_FAULT; never set by emc itself):
    `protocol=N` announces protocol N, `exit-in-fit` exits at a trial's first epoch, `exit-in-fit-once=PATH` does so
    only while PATH does not exist (creating it), `hang-in-fit` stops answering at a trial's first epoch,
    `exit-at-epoch-once=K:PATH` exits at the start of epoch K (after the checkpoint) while PATH does not exist."""

    def __init__(self, text):
        self.items = dict((part.split("=", 1) + [""])[:2] for part in text.split(",") if part) if text else {}

    def at_first_epoch(self):
        if "exit-in-fit" in self.items:
            os._exit(17)
        once = self.items.get("exit-in-fit-once")
        if once and not os.path.exists(once):
            open(once, "w").close()
            os._exit(17)
        if "hang-in-fit" in self.items:
            while True:
                time.sleep(3600)

    def before_epoch(self, epoch):
        """`exit-at-epoch-once=K:PATH`: exits at the start of epoch K (after its checkpoint), while PATH does not exist."""
        rule = self.items.get("exit-at-epoch-once")
        if rule:
            k, _, path = rule.partition(":")
            if epoch >= int(k) and not os.path.exists(path):
                open(path, "w").close()
                os._exit(17)


class Worker:
    def __init__(self, channel):
        self.channel = channel
        self.faults = Faults(os.environ.get("EMC_WORKER_FAULT", ""))
        self.torch = None
        self.torch_error = None
        self.test_cache = {}
        try:
            import torch
            self.torch = torch
        except Exception as e:  # ImportError, or a broken install
            self.torch_error = f"{type(e).__name__}: {e}"

    # Requests ---------------------------------------------------------------------------------------------------------

    def hello(self, request_id, params):
        theirs = params.get("protocol")
        ours = int(self.faults.items.get("protocol", PROTOCOL))
        if theirs != ours:
            self.channel.error(request_id, "protocol-version",
                               f"this worker ({_version()}) speaks protocol {ours}, emc asked for {theirs}: install the emcshards package "
                               f"from the same emc source (pip install ./python[torch])")
            return
        if self.torch is None:
            self.channel.error(request_id, "torch-missing", f"{sys.executable} cannot import torch ({self.torch_error})")
            return
        torch = self.torch
        self.channel.send({"id": request_id, "result": {
            "protocol": ours, "worker": _version(), "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.is_available(), "devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}})

    def _settings(self, params):
        """Precision and determinism, set before every trial and returned with its result."""
        torch = self.torch
        device = params.get("device", "cpu")
        threads = int(params.get("threads", 1))
        torch.set_num_threads(max(1, threads))
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        from .fit import FitError
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise FitError("device", f"device {device} was asked for, but torch {torch.__version__} sees no CUDA device")
        if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise FitError("device", f"device mps was asked for, but torch {torch.__version__} has no MPS backend here")
        return device, threads

    def _load(self, path, split, n, seed, normalize, device):
        """The split's samples (the seed's nested subset of n, or all of them) as normalised float32 tensors on the
        device, exactly as emc's batches are made: images v·a + b per channel (a = 1/std, b = −mean/std as float32,
        computed in one rounding), tabular features x·a + b in float32."""
        import numpy as np
        from .dataset import ShardDataset
        torch = self.torch
        ds = ShardDataset(path, split)
        source = ds.subset(n, seed) if n is not None else ds
        count = len(source)
        x, y = source.batch(np.arange(count))
        schema = ds.schema
        width = schema["channels"] if schema["kind"] == "image" else schema["features"]
        a = np.ones(width, dtype=np.float32)
        b = np.zeros(width, dtype=np.float32)
        if normalize == "unit" and schema["kind"] == "image":
            a[:] = np.float32(1 / 255)
        elif normalize == "standard":
            stats = ds.manifest.get("statistics") or {}
            mean, std = stats.get("mean"), stats.get("std")
            if not isinstance(mean, list) or not isinstance(std, list) or len(mean) != width or len(std) != width:
                from .fit import FitError
                raise FitError("data", f"{path}: the manifest has no per-channel statistics to standardise with")
            for c in range(width):
                s = std[c] if std[c] > 0 else 1
                a[c] = np.float32(1 / s)
                b[c] = np.float32(-mean[c] / s)
        if schema["kind"] == "image":
            values = (x.astype(np.float64) * a.astype(np.float64) + b.astype(np.float64)).astype(np.float32)
            nhwc = torch.from_numpy(values)
            # Copied into standard NCHW strides: with one channel, permute().contiguous() keeps strides that also read as
            # channels-last, and torch 2.15's CPU convolution backward then corrupts memory on them.
            tensor = torch.empty((count, nhwc.shape[3], nhwc.shape[1], nhwc.shape[2]), dtype=torch.float32).copy_(nhwc.permute(0, 3, 1, 2))
        else:
            tensor = torch.from_numpy(x.astype(np.float32) * a + b)
        labels = torch.from_numpy(y.astype(np.int64))
        if (labels < 0).any() or (labels >= ds.classes).any():
            from .fit import FitError
            raise FitError("data", f"{path}: a label is outside 0..<{ds.classes}")
        return tensor.to(device), labels.to(device), ds

    def _build(self, spec, sample_shape, classes, expected_source=None):
        from .fit import FitError
        from .models import ModelError, build_any
        try:
            model = build_any(spec, sample_shape, classes)
        except ModelError as e:
            raise FitError("model", str(e))
        except (ValueError, KeyError) as e:
            raise FitError("unsupported", f"the torch trainer cannot build {spec!r}: {e}")
        source = getattr(model, "emc_source", None)
        if expected_source is not None and source != expected_source:
            raise FitError("model", f"the source of {spec} changed since the search began (its hash was {expected_source[:12]}…, "
                                    f"now {str(source)[:12]}…): an edited model is another configuration; rerun the search")
        return model

    def describe(self, request_id, params):
        """A model's trainable parameter count and source hash, built once (for a py: model, before any trial)."""
        from .dataset import ShardDataset
        from .fit import FitError
        if self.torch is None:
            raise FitError("torch-missing", f"{sys.executable} cannot import torch ({self.torch_error})")
        ds = ShardDataset(params["data"], "train")
        self.torch.manual_seed(0)
        model = self._build(params["model"], ds.shape, int(params.get("classes", ds.classes)))
        self.channel.send({"id": request_id, "result": {
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "source": getattr(model, "emc_source", None) or "-"}})

    def _check_memory(self, device, parameters, x, spec):
        """On a CUDA device, what the trial surely needs (parameters, their gradients, the optimizer's state, the subset
        already there) against the device's free memory, before training: an out-of-memory is an error, never a result."""
        torch = self.torch
        if not device.startswith("cuda"):
            return
        free, total = torch.cuda.mem_get_info(torch.device(device))
        states = {"sgd": 1, "gd": 1, "adam": 2, "adamw": 2}.get(spec.kind, 2)
        need = 4 * parameters * (1 + states)  # gradients and the optimizer's buffers, still to be allocated
        if need > free:
            from .fit import FitError
            raise FitError("out-of-memory", f"the trial needs at least {need / 2**30:.2f} GiB more on {device} for its gradients and "
                                            f"optimizer state beside the model and its {x.numel() * 4 / 2**30:.2f} GiB of samples; "
                                            f"{free / 2**30:.2f} of {total / 2**30:.2f} GiB are free")

    def fit(self, request_id, params):
        from .fit import FitError, OptimizerSpec, Rules, Trial
        torch = self.torch
        if torch is None:
            raise FitError("torch-missing", f"{sys.executable} cannot import torch ({self.torch_error})")
        started = time.monotonic()
        device, threads = self._settings(params)
        spec = OptimizerSpec(params["optimizer"])
        rules = Rules(params["rules"])
        n, seed, trial_seed = int(params["n"]), int(params["seed"]), int(params["trialSeed"])
        x, y, ds = self._load(params["data"], "train", n, seed, params.get("normalize", "standard"), device)
        torch.manual_seed(trial_seed)
        model = self._build(params["model"], ds.shape, int(params.get("classes", ds.classes)), params.get("modelSource"))
        model = model.to(device)
        parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self._check_memory(device, parameters, x, spec)
        last = [time.monotonic()]
        first = [True]

        def progress(report):
            if first[0]:
                first[0] = False
                self.faults.at_first_epoch()
            last[0] = time.monotonic()
            self.channel.send({"id": request_id, "progress": report})

        def heartbeat(epoch, steps):
            """A note every 2 s while the trial trains or passes over its samples: emc's timeout hears it is alive."""
            now = time.monotonic()
            if now - last[0] >= 2:
                last[0] = now
                self.channel.send({"id": request_id, "progress": {"epoch": epoch, "steps": steps, "running": True}})

        eval_batch = int(params.get("evalBatch", max(rules.batch, 1024)))
        precision = params.get("precision", "float32")
        trial = Trial(model, x, y, spec, rules, trial_seed, eval_batch, int(params.get("historyPoints", 100)), progress, precision)
        trial.heartbeat = heartbeat
        trial.before_epoch = self.faults.before_epoch
        if params.get("checkpoint"):
            import hashlib
            identity = {k: params.get(k) for k in ("data", "n", "seed", "trialSeed", "normalize", "model", "modelSource", "classes",
                                                   "optimizer", "rules", "evalBatch", "precision")}
            trial.checkpoint = {"path": params["checkpoint"]["path"], "interval": float(params["checkpoint"]["interval"]),
                                "identity": hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()}
        outcome = trial.fit()
        prior = outcome.pop("priorSeconds", 0.0)
        if outcome.get("resumedFromEpoch") is None:
            outcome.pop("resumedFromEpoch", None)
        if params.get("evaluateTest", False) and "test" in ds.manifest.get("splits", {}) and ds.manifest["splits"]["test"].get("samples", 0) > 0:
            key = (params["data"], params.get("normalize", "standard"), device)
            if key not in self.test_cache:
                self.test_cache.clear()
                tx, ty, _ = self._load(params["data"], "test", None, 0, params.get("normalize", "standard"), device)
                self.test_cache[key] = (tx, ty)
            tx, ty = self.test_cache[key]
            wrong = trial.evaluate(tx, ty)
            outcome["testAccuracy"] = (ty.shape[0] - wrong) / ty.shape[0]
        outcome["seconds"] = prior + time.monotonic() - started
        outcome["trainer"] = {
            "kind": "torch", "worker": _version(), "torch": torch.__version__, "device": device,
            "precision": "float32" if precision == "float32" else "bf16-autocast",
            "deterministic": torch.are_deterministic_algorithms_enabled(), "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "threads": torch.get_num_threads(), "parameters": parameters}
        self.channel.send({"id": request_id, "result": outcome})

    # The loop ---------------------------------------------------------------------------------------------------------

    def serve(self, stream):
        from .errors import ShardError
        from .fit import FitError
        for raw in stream:
            line = raw.strip()
            if not line:
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
            except ValueError as e:
                self.channel.error(None, "bad-request", f"not a JSON request: {e}")
                continue
            request_id, method, params = request.get("id"), request.get("method"), request.get("params") or {}
            try:
                if method == "hello":
                    self.hello(request_id, params)
                elif method == "fit":
                    self.fit(request_id, params)
                elif method == "describe":
                    self.describe(request_id, params)
                elif method == "shutdown":
                    self.channel.send({"id": request_id, "result": {}})
                    return
                else:
                    self.channel.error(request_id, "bad-request", f"unknown method {method!r} (hello, describe, fit, shutdown)")
            except FitError as e:
                self.channel.error(request_id, e.code, str(e))
            except ShardError as e:
                self.channel.error(request_id, "data", str(e))
            except KeyError as e:
                self.channel.error(request_id, "bad-request", f"the request lacks {e}")
            except Exception as e:  # a bug or a resource: the message and where, never a silent result
                text = str(e)
                code = "out-of-memory" if "out of memory" in text.lower() or isinstance(e, MemoryError) else "internal"
                traceback.print_exc(file=sys.stderr)
                self.channel.error(request_id, code, f"{type(e).__name__}: {text}")


def main():
    # The protocol owns the real stdout; whatever else prints (a model's code, a library's warning) goes to stderr.
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    Worker(Channel(protocol_out)).serve(sys.stdin)


if __name__ == "__main__":
    main()
