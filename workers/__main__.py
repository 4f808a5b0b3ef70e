"""`python -m workers`: one worker process (the Procfile's and `kabootar worker`'s)."""

from gateway.box.cli import main

if __name__ == "__main__":
    main(["worker"])
