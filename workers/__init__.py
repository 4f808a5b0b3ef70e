"""Kabootar's RQ workers: thin job shims over the domain functions in `gateway`."""
