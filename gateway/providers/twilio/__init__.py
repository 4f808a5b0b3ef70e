"""Twilio: its webhooks (`webhooks`), its REST API (`api`), its words (`vocabulary`), and a
simulator of it for offline runs and tests (`simulator`, `simstore`)."""
