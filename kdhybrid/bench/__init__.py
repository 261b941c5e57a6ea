"""Benchmarks that print their figures: ``python -m kdhybrid.bench <name> [options]``."""
