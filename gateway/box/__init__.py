"""What runs one box: the embedded Redis, the supervisor, the `kabootar` command."""
