"""emc's model families built in PyTorch, as the native trainer builds them (docs/models.md): the torch trainer's
models (`emcshards.worker`), the benchmarks' and the reference fixtures'.

`build(spec, (h, w, c), classes)` returns an nn.Module taking NCHW images (or [B, F] vectors) whose parameters, in
`model.emc_tensors` order, are emc's parameter tensors in emc's order. Each entry is (parameter, layout), where the
layout says how emc stores it: "same" (a Linear's [out, in], biases, norms' scales and shifts), "conv" (emc [O, K, K, I],
PyTorch [O, I, K, K]), "dw" (emc [C, K, K], PyTorch [C, 1, K, K]), "pointwise" (emc [O, I], PyTorch's 1×1 conv
[O, I, 1, 1]) and "token" (emc [T, D] or [D], PyTorch [1, T, D] or [1, 1, D]). emc flattens NHWC, so the models here
permute to NHWC before every flatten.
"""
import hashlib
import importlib
import importlib.util
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse(spec):
    family, _, rest = spec.partition(":")
    opts = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    return family, opts


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "silu": nn.SiLU,
               "leaky_relu": nn.LeakyReLU, "identity": nn.Identity}


def to_emc(tensor, layout):
    """A PyTorch tensor (a parameter or its gradient) in emc's layout, flattened."""
    t = tensor.detach()
    if layout == "conv":
        t = t.permute(0, 2, 3, 1)
    return t.reshape(-1)


def from_emc(values, parameter, layout):
    """emc's flat values as a tensor of the parameter's shape."""
    if layout == "conv":
        o, i, kh, kw = parameter.shape
        return values.reshape(o, kh, kw, i).permute(0, 3, 1, 2).contiguous()
    return values.reshape(parameter.shape).clone()


class Flatten(nn.Module):
    """emc's flatten: NHWC order."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1) if x.dim() == 4 else x


class Residual(nn.Module):
    def __init__(self, main, shortcut=None):
        super().__init__()
        self.main, self.shortcut = main, shortcut

    def forward(self, x):
        return self.main(x) + (x if self.shortcut is None else self.shortcut(x))


class ShortcutA(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.pad, self.stride = (cout - cin) // 2, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))


class SqueezeExcite(nn.Module):
    def __init__(self, c, s, record):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, s, 1), nn.Conv2d(s, c, 1)
        record(self.fc1.weight, "pointwise"), record(self.fc1.bias, "same")
        record(self.fc2.weight, "pointwise"), record(self.fc2.bias, "same")

    def forward(self, x):
        g = torch.sigmoid(self.fc2(F.silu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * g


class Attention(nn.Module):
    """timm's Attention: one q/k/v projection, heads split as (3, heads, head_dim), no mask."""

    def __init__(self, dim, heads, record):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        record(self.norm.weight, "same"), record(self.norm.bias, "same")
        record(self.qkv.weight, "same"), record(self.qkv.bias, "same")
        record(self.proj.weight, "same"), record(self.proj.bias, "same")

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        p = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        return self.proj((p @ v).transpose(1, 2).reshape(b, t, d))


class MLPBlock(nn.Module):
    def __init__(self, dim, hidden, act, record):
        super().__init__()
        self.norm, self.fc1, self.act, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, hidden), act(), nn.Linear(hidden, dim)
        for p in (self.norm.weight, self.norm.bias, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias):
            record(p, "same")

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.norm(x))))


class ViT(nn.Module):
    def __init__(self, o, shape, classes, record):
        super().__init__()
        h, w, c = shape
        dim, depth, heads = int(o.get("dim", 64)), int(o.get("depth", 2)), int(o.get("heads", 4))
        patch, ratio, self.cls = int(o.get("patch", 4)), int(o.get("mlp", 4)), o.get("pool", "cls") == "cls"
        act = ACTIVATIONS[o.get("act", "gelu")]
        self.embed = nn.Conv2d(c, dim, patch, stride=patch)
        record(self.embed.weight, "conv"), record(self.embed.bias, "same")
        tokens = (h // patch) * (w // patch) + (1 if self.cls else 0)
        if self.cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            record(self.cls_token, "token")
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        record(self.pos, "token")
        blocks = []
        for _ in range(depth):
            blocks += [Residual(Attention(dim, heads, record)), Residual(MLPBlock(dim, ratio * dim, act, record))]
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(dim)
        record(self.norm.weight, "same"), record(self.norm.bias, "same")
        self.head = nn.Linear(dim, classes)
        record(self.head.weight, "same"), record(self.head.bias, "same")

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        if self.cls:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.norm(self.blocks(x + self.pos))
        return self.head(x[:, 0] if self.cls else x.mean(1))


def round_channels(c, width):
    v = c * width
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def build(spec, shape, classes):
    family, o = parse(spec)
    h, w, c = shape
    emc = []

    def record(p, layout):
        emc.append((p, layout))

    def conv_bn(cin, cout, k, stride, layers):
        conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=False)
        bn = nn.BatchNorm2d(cout)
        record(conv.weight, "conv"), record(bn.weight, "same"), record(bn.bias, "same")
        layers += [conv, bn]

    def linear(d, out, layers):
        lin = nn.Linear(d, out)
        record(lin.weight, "same"), record(lin.bias, "same")
        layers.append(lin)

    layers = []
    if family == "vit":
        model = ViT(o, shape, classes, record)
        model.emc_tensors = emc
        return model
    if family == "mlp":
        act = ACTIVATIONS[o.get("act", "relu")]
        width, depth = int(o.get("width", 16)), int(o.get("depth", 2))
        layers.append(Flatten())
        d = h * w * c
        for _ in range(depth):
            linear(d, width, layers)
            layers.append(act())
            d = width
    elif family == "cnn":
        act = ACTIVATIONS[o.get("act", "relu")]
        ch, n, growth, fc = int(o.get("channels", 16)), int(o.get("layers", 2)), int(o.get("growth", 1)), int(o.get("fc", 0))
        cin = c
        for _ in range(n):
            conv = nn.Conv2d(cin, ch, 3, padding=1)
            record(conv.weight, "conv"), record(conv.bias, "same")
            layers += [conv, act(), nn.MaxPool2d(2)]
            cin, h, w = ch, h // 2, w // 2
            ch *= growth
        layers.append(Flatten())
        d = cin * h * w
        if fc > 0:
            linear(d, fc, layers)
            layers.append(act())
            d = fc
    elif family == "resnet":
        act = ACTIVATIONS[o.get("act", "relu")]
        width, blocks, stages = float(o.get("width", 1)), int(o.get("blocks", 2)), int(o.get("stages", 3))
        shortcut = o.get("shortcut", "projection")
        ch = max(1, round(16 * width))
        conv_bn(c, ch, 3, 1, layers)
        layers.append(act())
        cin = ch
        for stage in range(stages):
            if stage > 0:
                ch *= 2
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                main = []
                conv_bn(cin, ch, 3, stride, main)
                main.append(act())
                conv_bn(ch, ch, 3, 1, main)
                side = None
                if stride != 1 or cin != ch:
                    if shortcut == "a":
                        side = ShortcutA(cin, ch, stride)
                    else:
                        s = []
                        conv_bn(cin, ch, 1 if shortcut == "projection" else 3, stride, s)
                        side = nn.Sequential(*s)
                layers += [Residual(nn.Sequential(*main), side), act()]
                cin = ch
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        d = cin
    elif family == "efficientnet":
        act = ACTIVATIONS[o.get("act", "silu")]
        if "phi" in o:
            wm, dm = 1.1 ** float(o["phi"]), 1.2 ** float(o["phi"])
        else:
            wm, dm = float(o.get("width", 1)), float(o.get("depth", 1))
        cin = round_channels(32, wm)
        conv_bn(c, cin, 3, 2, layers)
        layers.append(act())
        for expand, k, stride0, out, repeats in B0[:int(o.get("stages", 7))]:
            out = round_channels(out, wm)
            for r in range(math.ceil(repeats * dm)):
                stride = stride0 if r == 0 else 1
                main, e = [], cin * expand
                if expand != 1:
                    pw = nn.Conv2d(cin, e, 1, bias=False)
                    bn = nn.BatchNorm2d(e)
                    record(pw.weight, "pointwise"), record(bn.weight, "same"), record(bn.bias, "same")
                    main += [pw, bn, act()]
                dw = nn.Conv2d(e, e, k, stride=stride, padding=(k - 1) // 2, groups=e, bias=False)
                bn = nn.BatchNorm2d(e)
                record(dw.weight, "dw"), record(bn.weight, "same"), record(bn.bias, "same")
                main += [dw, bn, act(), SqueezeExcite(e, max(1, cin // 4), record)]
                pw = nn.Conv2d(e, out, 1, bias=False)
                bn = nn.BatchNorm2d(out)
                record(pw.weight, "pointwise"), record(bn.weight, "same"), record(bn.bias, "same")
                main += [pw, bn]
                block = nn.Sequential(*main)
                layers.append(Residual(block) if stride == 1 and cin == out else block)
                cin = out
        head = round_channels(1280, wm)
        pw = nn.Conv2d(cin, head, 1, bias=False)
        bn = nn.BatchNorm2d(head)
        record(pw.weight, "pointwise"), record(bn.weight, "same"), record(bn.bias, "same")
        layers += [pw, bn, act(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        d = head
    else:
        raise ValueError(f"unknown family in {spec}")
    linear(d, classes, layers)
    model = nn.Sequential(*layers)
    model.emc_tensors = emc
    return model


class ModelError(Exception):
    """A researcher's model that cannot be used: the message says what is wrong and where."""


def _literal(text):
    """A spec value typed by its literal: an integer, a float, true/false, otherwise the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_python(spec):
    """`py:MODULE:CALLABLE,key=value,...` as (module, callable, {key: typed value})."""
    body = spec[3:]
    head, _, rest = body.partition(",")
    module, _, name = head.rpartition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key.strip()] = _literal(value.strip())
    return module, name, options


def python_source(module):
    """The file of a model's module (a path, or a dotted module's origin) and the SHA-256 of its bytes."""
    if module.endswith(".py") or "/" in module:
        path = module
    else:
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError) as e:
            raise ModelError(f"module {module} cannot be found: {e}") from None
        if found is None or not found.origin or not os.path.isfile(found.origin):
            raise ModelError(f"module {module} cannot be found on the worker's Python path")
        path = found.origin
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelError(f"the model file {path} cannot be read ({e.strerror})") from None
    return path, hashlib.sha256(data).hexdigest()


def build_python(spec, shape, classes):
    """A researcher's model: CALLABLE(shape, classes, **keys) from MODULE, checked to be an nn.Module whose output on a
    batch of two samples is [2, classes]. `shape` is (C, H, W) for images, (F,) for vectors."""
    module, name, options = parse_python(spec)
    path, digest = python_source(module)
    try:
        if module.endswith(".py") or "/" in module:
            unique = "emc_model_" + digest[:16]
            loaded = sys.modules.get(unique)
            if loaded is None:
                found = importlib.util.spec_from_file_location(unique, path)
                if found is None or found.loader is None:
                    raise ModelError(f"{path} is not a Python source file (a py: model names a .py file or a dotted module)")
                loaded = importlib.util.module_from_spec(found)
                found.loader.exec_module(loaded)
                sys.modules[unique] = loaded
        else:
            # A dotted module may live in the folder emc runs in (which is not on the worker's path by default).
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            loaded = importlib.import_module(module)
    except ModelError:
        raise
    except Exception as e:  # the file's own error: its type, message and line
        raise ModelError(f"{path} does not import: {type(e).__name__}: {e}") from None
    fn = getattr(loaded, name, None)
    if not callable(fn):
        raise ModelError(f"{path} has no function {name}")
    torch_shape = tuple(shape)
    try:
        model = fn(torch_shape, classes, **options)
    except Exception as e:
        raise ModelError(f"{name}{torch_shape, classes} in {path} raised {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{name} in {path} returned {type(model).__name__}, not a torch.nn.Module")
    was_training = model.training
    try:
        with torch.no_grad():
            out = model(torch.zeros((2,) + tuple(torch_shape)))
    except Exception as e:
        raise ModelError(f"the model from {name} in {path} fails on a batch of shape {(2,) + tuple(torch_shape)}: {type(e).__name__}: {e}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"the model from {name} in {path} outputs {got} for 2 samples; emc needs [2, {classes}] (one logit per class)")
    model.emc_source = digest
    return model


def build_any(spec, sample_shape, classes):
    """emc's families, or a researcher's `py:` model, for samples of the reader's shape: (H, W, C) images or (F,)
    vectors. The tensors are NCHW (or [B, F])."""
    if spec.startswith("py:"):
        torch_shape = (sample_shape[2], sample_shape[0], sample_shape[1]) if len(sample_shape) == 3 else tuple(sample_shape)
        return build_python(spec, torch_shape, classes)
    return build(spec, sample_shape if len(sample_shape) == 3 else (1, 1, sample_shape[0]), classes)
