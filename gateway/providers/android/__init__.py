"""SMS Gateway for Android (capcom6's open-source "sms-gate" app) on a phone with a local
SIM: its webhooks (`webhooks`), its local-server API (`api`), its words (`vocabulary`),
and a simulator of the phone for offline runs and tests (`simulator`)."""
