"""Benchmark scenarios (run.py); not part of the installed package."""
