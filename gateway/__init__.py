"""Kabootar: an SMS-to-web gateway (see docs/ARCHITECTURE.md for the map)."""
