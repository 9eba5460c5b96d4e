"""Benchmarks of fieldmon's hot paths, each reported as a ratio against an anchor measured in
the same run (see bench/README.md). Run one with ``.venv/bin/python -m bench.<name>``."""
