import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASHION = "/usr/share/datasets/fashion-mnist"


def emc_binary():
    path = os.environ.get("EMC") or os.path.join(ROOT, ".build", "debug", "emc")
    if not os.path.exists(path):
        pytest.fail(f"the emc binary is not built at {path} (set EMC=path or run swift build)")
    return path


def emc(*args):
    """Runs emc; a failure shows its stderr."""
    result = subprocess.run([emc_binary(), *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"emc {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def sets(tmp_path_factory):
    """Shard sets written by emc in this run: real Fashion-MNIST in every codec (and once in several shards), a 128×128×3
    synthetic set, and a variant chain (label noise on top of permuted inputs), plus Gaussian and per-sample
    permutations."""
    base = tmp_path_factory.mktemp("sets")
    out = {}
    for codec in ["none", "lz4", "lz4-delta", "zstd", "zstd-delta"]:
        folder = base / f"fm-{codec}"
        emc("convert", "fashion-mnist", "--raw", FASHION, "--out", folder, "--codec", codec, "--quiet")
        out[codec] = str(folder)
    # The same train split in shards of about 7,000 samples (rounded up to whole chunks): several shards, a shorter last one.
    emc("convert", "fashion-mnist", "--raw", FASHION, "--out", base / "fm-sharded", "--codec", "lz4", "--shard-samples", "7000", "--quiet")
    out["sharded"] = str(base / "fm-sharded")
    emc("synth", "--samples", "600", "--test-samples", "100", "--size", "128", "--classes", "10", "--seed", "1", "--out", base / "synth", "--quiet")
    out["synth"] = str(base / "synth")
    fm = out["lz4"]
    emc("perturb", fm, "--out", base / "perm", "--inputs", "permute", "--seed", "3", "--quiet")
    emc("perturb", base / "perm", "--out", base / "chain", "--label-noise", "0.2", "--seed", "4", "--quiet")
    emc("perturb", fm, "--out", base / "gauss", "--inputs", "gaussian", "--seed", "5", "--quiet")
    emc("perturb", out["synth"], "--out", base / "synth-each", "--inputs", "permute-each", "--seed", "6", "--quiet")
    for name in ["chain", "gauss", "synth-each"]:
        out[name] = str(base / name)
    # A tabular set: a credit-format CSV (two header rows, categorical columns one-hot encoded by emc), with Gaussian
    # and permuted variants on top.
    raw = base / "credit-raw"
    raw.mkdir()
    lines = [",X1,X2,X3,X4,X5,X6,X7,X8,X9,X10,X11,X12,X13,X14,X15,X16,X17,X18,X19,X20,X21,X22,X23,Y",
             "ID,LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,PAY_3,PAY_4,PAY_5,PAY_6,BILL_AMT1,BILL_AMT2,BILL_AMT3,BILL_AMT4,"
             "BILL_AMT5,BILL_AMT6,PAY_AMT1,PAY_AMT2,PAY_AMT3,PAY_AMT4,PAY_AMT5,PAY_AMT6,default payment next month"]
    for i in range(400):
        cells = [i + 1, 20000 + 137 * i, 1 + i % 2, 1 + i % 4, 1 + i % 3, 24 + i % 30] + [(k + i) % 3 - 1 for k in range(6)] \
            + [(k + 1) * 100 + (i * 7919) % 1000 for k in range(12)] + [1 if i % 5 == 0 else 0]
        lines.append(",".join(map(str, cells)))
    (raw / "default of credit card clients.csv").write_text("\n".join(lines) + "\n")
    emc("convert", "credit", "--raw", raw, "--out", base / "credit", "--quiet")
    emc("perturb", base / "credit", "--out", base / "credit-gauss", "--inputs", "gaussian", "--seed", "7", "--quiet")
    emc("perturb", base / "credit", "--out", base / "credit-perm", "--inputs", "permute-each", "--seed", "8", "--quiet")
    for name in ["credit", "credit-gauss", "credit-perm"]:
        out[name] = str(base / name)
    out["root"] = str(base)
    return out


def exported(folder, split="train", subset=None, seed=0, tmp=None):
    """What emc itself reads, via `emc export`: (x, y, positions or None)."""
    import numpy as np
    prefix = os.path.join(tmp, f"export-{os.path.basename(folder)}-{split}-{subset}-{seed}")
    args = ["export", folder, "--split", split, "--out", prefix, "--force", "--quiet"]
    if subset is not None:
        args += ["--subset", subset, "--seed", seed]
    emc(*args)
    x, y = np.load(prefix + ".x.npy"), np.load(prefix + ".y.npy")
    positions = np.load(prefix + ".positions.npy") if subset is not None else None
    return x, y, positions
