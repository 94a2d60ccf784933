"""Sweeps: for each engine configuration, start it, drive a workload through it, record the point."""
