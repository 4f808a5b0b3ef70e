"""The `kabootar` command.

    kabootar run                 everything on one box: Redis (unless REDIS_URL), the web app, WORKERS workers
    kabootar web                 one web process: gunicorn serving gateway.web:create_app() on HOST:PORT
    kabootar worker              one worker process
    kabootar ops add-user NAME   an operator for the console (or a new password)

Each subcommand is a function taking the parsed arguments and returning an exit status;
`build_parser` wires them up, so a new one (say `kabootar ops add-user NAME`) is an
`add_parser` call and a function.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from gateway.config import Config, ConfigError, simulator_by_default

Handler = Callable[[argparse.Namespace], int]

# `-c python:...` loads gunicorn settings from a module, so the Procfile and `kabootar web` share them.
GUNICORN_ARGV = ["-m", "gunicorn", "-c", "python:gateway.box.gunicorn_conf", "gateway.web:create_app()"]


def _fail(message: str, status: int = 2) -> int:
    print(f"kabootar: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    """Start and watch Redis, the web app and the workers until Ctrl-C (with the simulators
    when no provider has any credentials)."""
    from gateway.box.supervisor import Supervisor

    config = Config.from_env(simulator_by_default(os.environ))
    config.check_providers()
    return Supervisor(config).run()


def web(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn, so signals reach its master directly."""
    config = Config.from_env()
    if not config.redis_url:
        return _fail("REDIS_URL is not set: use `kabootar run` to start Redis as well, or set it")
    config.check_providers()
    # Generate (or load) the dev key once here: gunicorn's workers would race to write it.
    env = {**os.environ, "SECRET_KEY": config.with_secret_key().secret_key}
    os.execve(sys.executable, [sys.executable, *GUNICORN_ARGV], env)
    return 1  # not reached


def worker(args: argparse.Namespace) -> int:
    """Run one RQ worker until SIGTERM/SIGINT (a warm shutdown: the current job finishes)."""
    from workers.worker import main as run_worker

    return run_worker()


def _redis(config: Config) -> Redis:
    """REDIS_URL's Redis or, when it is unset, the one `kabootar run` started for this
    checkout: on its usual port, and only if its data directory is our var/redis."""
    from gateway.box.supervisor import REDIS_PORT

    if config.redis_url:
        return Redis.from_url(config.redis_url, decode_responses=True, socket_connect_timeout=2)
    redis = Redis(port=REDIS_PORT, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)
    expected = str((config.var_dir / "redis").resolve())
    if redis.config_get("dir").get("dir") != expected:
        raise RedisError(f"the Redis on port {REDIS_PORT} is not the one `kabootar run` started here")
    return redis


def ops_add_user(args: argparse.Namespace) -> int:
    """Create an operator for /ops, or set a new password (prompted, or one line of stdin)."""
    from gateway.ops import accounts

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            return _fail("the passwords differ", 1)
    try:
        accounts.add_user(_redis(Config.from_env()), args.name, password)
    except ValueError as e:
        return _fail(str(e), 1)
    except RedisError as e:
        return _fail(f"{e}. Is `make run` running? Else set REDIS_URL to the URL it printed.")
    print(f"operator {args.name.strip().lower()} can now log in at /ops/login")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand; each sets `handler`."""
    parser = argparse.ArgumentParser(
        prog="kabootar", description="Kabootar, an SMS-to-web gateway. Settings come from the environment."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    command("run", run, "run Redis (unless REDIS_URL is set), the web app and WORKERS workers on this box")
    command("web", web, "run the web app under gunicorn on HOST:PORT")
    command("worker", worker, "run one worker process")
    ops = command("ops", ops_add_user, "operator console accounts")
    add_user = ops.add_subparsers(dest="ops_command", required=True, metavar="ACTION").add_parser(
        "add-user", help="create an operator (or set a new password)", description=ops_add_user.__doc__
    )
    add_user.add_argument("name", help="the operator's login name")
    add_user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kabootar` console script."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as e:  # a setting it cannot start with: say which, not a traceback
        return _fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
