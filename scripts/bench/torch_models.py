"""The benchmarks' name for emc's PyTorch models, which live in the Python package (python/emcshards/models.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "python"))
from emcshards.models import *  # noqa: E402,F401,F403
from emcshards.models import build, from_emc, parse, to_emc  # noqa: E402,F401
