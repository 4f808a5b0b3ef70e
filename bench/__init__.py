"""Kabootar's benchmark suite: `make bench` (`python -m bench`); see bench/__main__.py and bench/README.md."""
