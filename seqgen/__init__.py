"""seqgen: generate shape-checked nn.Sequential models and their tests from a compact spec."""

__version__ = "0.1.0"
