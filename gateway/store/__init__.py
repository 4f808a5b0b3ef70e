"""Where the data lives in Redis: keys, scripts, worklists, queues, counters."""
