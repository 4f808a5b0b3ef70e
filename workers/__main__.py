"""`python -m workers`: one worker process (the Procfile's and `kabootar worker`'s)."""

import sys

from workers.worker import main

if __name__ == "__main__":
    sys.exit(main())
