"""A simulator of Twilio's Messages API, for offline runs and tests (`SIMULATOR`): its API
(`api`), the status callbacks it posts (`callbacks`), and what it remembers (`store`)."""
