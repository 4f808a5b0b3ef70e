"""The SMS provider edge: each provider translates its webhooks, API and codes to neutral records."""
