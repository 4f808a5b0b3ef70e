"""Inbound texts: accepted from a webhook, stored, and turned into posts or commands."""
