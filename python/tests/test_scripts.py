"""The scripts under scripts/ and scripts/bench answer --help with their usage and refuse what they do not take, before
any set-up, build or benchmark runs."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# script, arguments it refuses, words its error names
SCRIPTS = [
    ("pool_threads.py", ["nolabel.json"], "LABEL=FILE"),
    ("python_reader.py", ["--bogus"], "--bogus"),
    ("torch_emc.py", ["--width", "wide"], "--width"),
    ("torch_fixtures.py", ["--bogus"], "--bogus"),
    ("torch_loader.py", ["--bogus"], "--bogus"),
    ("torch_pairs.py", ["vit:dim=64", "--pairs", "0"], "--pairs"),
    ("torch_train.py", ["--threads", "0"], "--threads"),
    ("torch_overhead.py", ["somewhere", "--bogus"], "--bogus"),
]


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench", script), *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("script,bad,named", SCRIPTS)
def test_help_and_refusal(script, bad, named):
    shown = run(script, "--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: " + script), shown.stdout[:200]
    refused = run(script, *bad)
    assert refused.returncode == 2, (refused.returncode, refused.stdout[-500:], refused.stderr[-500:])
    assert "error:" in refused.stderr and named in refused.stderr, refused.stderr


# The shell scripts: --help prints the opening comment; those that take no arguments refuse one (exit 2, naming it).
SHELL_SCRIPTS = ["demo", "setup", "test", "python-test", "slurm-test", "slurm", "fuzz", "package-data", "torch-env", "screenshot"]
NO_ARGUMENTS = ["demo", "slurm-test", "package-data", "torch-env"]


def run_shell(script, *args):
    return subprocess.run([os.path.join(ROOT, "scripts", script), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_help(script):
    shown = run_shell(script, "--help")
    assert shown.returncode == 0, shown.stderr
    with open(os.path.join(ROOT, "scripts", script)) as f:
        first = f.readlines()[1].lstrip("# ").rstrip("\n")
    assert shown.stdout.splitlines()[0] == first, shown.stdout[:300]


@pytest.mark.parametrize("script", NO_ARGUMENTS)
def test_shell_refuses_arguments(script):
    refused = run_shell(script, "extra")
    assert refused.returncode == 2, (refused.returncode, refused.stderr[-300:])
    assert "takes no arguments (not: extra)" in refused.stderr, refused.stderr


def test_fuzz_refuses_seconds_that_are_not_a_count():
    refused = run_shell("fuzz", "soon")
    assert refused.returncode == 2 and "not 'soon'" in refused.stderr, refused.stderr
