"""Read emc shard sets from Python, sample for sample as emc reads them (see docs/shard-format.md)."""
from .errors import ShardError
from .philox import CounterRNG, philox4x32
from .reader import ShardFile, SplitReader
from .dataset import ShardDataset, Subset, nested_subset_positions

__all__ = ["ShardError", "CounterRNG", "philox4x32", "ShardFile", "SplitReader", "ShardDataset", "Subset", "nested_subset_positions"]
__version__ = "0.1.0"
