"""Outbound SMS: queued once per intent, fanned out, paced and sent through a provider."""
