"""A simulator of a phone running SMS Gateway for Android, for offline runs and tests: its
local-server API (`api`), the webhooks it posts (`reports`), what it remembers (`store`),
and its texts to the gateway (`phones`)."""
