"""fedcore: straggler-free federated learning with per-client coresets (Guo et al., arXiv 2402.00219), on Flower."""

__version__ = "0.1.0"
