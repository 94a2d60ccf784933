"""paretoserve: find and run the Pareto-optimal way to serve a small language model on one accelerator."""

__version__ = "0.1.0"
