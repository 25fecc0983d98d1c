"""The benchmark scripts under scripts/bench answer --help with their usage and refuse what they do not take, before
any benchmark or environment set-up runs."""
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
