"""The `kabootar` command.

    kabootar run                 everything on one box: Redis (unless REDIS_URL), the web app, WORKERS workers
    kabootar run --ha            the local HA topology (`make ha`): Redis + 2 replicas, 3 Sentinels,
                                 WORKERS workers, 2 web processes behind HAProxy
    kabootar restart --rolling   replace the running `kabootar run`'s web and worker processes one at a time
    kabootar web                 one web process (WEB_SERVER: Granian or gunicorn) on HOST:PORT
    kabootar worker              one worker process
    kabootar ops add-user NAME       an operator for the console (or a new password)
    kabootar ops set-password NAME   a new password for an operator (ends their sessions)
    kabootar ops remove-user NAME    remove an operator (ends their sessions)

`restart` and the `ops` commands use the Redis of the `kabootar run` (`make run`) that uses this var/,
whichever port it got, or the one --redis-url or REDIS_URL names.

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
from dataclasses import replace

from redis import Redis
from redis.exceptions import RedisError

from gateway.config import Config, ConfigError, simulator_by_default
from gateway.store import connect

Handler = Callable[[argparse.Namespace], int]


def _fail(message: str, status: int = 2) -> int:
    print(f"kabootar: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    """Start and watch Redis, the web app and the workers until Ctrl-C (with the simulators
    when no provider has any credentials)."""
    from gateway.box.supervisor import Supervisor

    config = Config.from_env(simulator_by_default(os.environ))
    config.check_providers()
    return Supervisor(config, ha=args.ha).run()


def restart(args: argparse.Namespace) -> int:
    """Ask the `kabootar run` using this var/ for a rolling restart, and wait until it is done."""
    from gateway.box import restart as restarting

    try:
        print(restarting.rolling(Config.from_env().var_dir, timeout=args.timeout))
    except restarting.RestartError as e:
        return _fail(str(e), 1)
    return 0


def web(args: argparse.Namespace) -> int:
    """Replace this process with the web server (WEB_SERVER), so signals reach its master
    directly."""
    from gateway.box import servers

    config = Config.from_env()
    if not (config.redis_url or config.redis_sentinels):
        return _fail(connect.NOT_CONFIGURED)
    config.check_providers()
    # Generate (or load) the dev key once here: the server's processes would race to write it.
    env = {**os.environ, "SECRET_KEY": config.with_secret_key().secret_key}
    argv = servers.argv(config)
    os.execve(argv[0], argv, env)
    return 1  # not reached


def worker(args: argparse.Namespace) -> int:
    """Run one RQ worker until SIGTERM/SIGINT (a warm shutdown: the current job finishes)."""
    from workers.worker import main as run_worker

    return run_worker()


class NoRedis(Exception):
    """No Redis to manage operators in; the message says where to find one."""


def _redis(config: Config, url: str | None) -> Redis:
    """--redis-url's Redis, else REDIS_URL's or REDIS_SENTINELS' primary, else the one the
    running `kabootar run` recorded in var/run.json (the supervisor's `running_redis`)."""
    from gateway.box.supervisor import running_redis

    if url:
        config = replace(config, redis_url=url, redis_sentinels=())
    if config.redis_url or config.redis_sentinels:
        return connect.client(config)
    running = running_redis(config.var_dir)
    if running is None:
        raise NoRedis(
            f"no `kabootar run` is running from {config.var_dir}/. Start it with `make run` "
            "(or run this from the directory it runs in), or name its Redis with --redis-url"
        )
    if running.sentinels:
        settings = {"REDIS_SENTINELS": running.sentinels, "REDIS_SENTINEL_MASTER": running.sentinel_master}
        redis = connect.client(Config.from_env({**os.environ, **settings}))
    else:
        redis = connect.client(replace(config, redis_url=running.url))
    ours = str((config.var_dir / "redis").resolve())
    try:
        # A run killed with SIGKILL leaves its record, and its port to whichever Redis comes next.
        stranger = running.embedded and redis.config_get("dir").get("dir") != ours
        redis.ping()
    except RedisError:
        raise NoRedis(
            f"the Redis that `kabootar run` recorded ({running.url}) does not answer: is `make run` "
            "still running? Start it, or name another Redis with --redis-url"
        ) from None
    if stranger:
        raise NoRedis(f"the Redis at {running.url} is not the one `kabootar run` started here")
    return redis


def _password(args: argparse.Namespace) -> str | None:
    """The new password: one line of stdin, or typed twice (None if the two differ)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(f"Password for {args.name}: ")
    return password if getpass.getpass("Again: ") == password else None


def _with_redis(args: argparse.Namespace, change: Callable[[Redis], str]) -> int:
    """Run one change to the operators in the right Redis; print what it did, or why not."""
    try:
        print(change(_redis(Config.from_env(), args.redis_url)))
    except (ValueError, LookupError) as e:
        return _fail(str(e), 1)
    except NoRedis as e:
        return _fail(str(e))
    except RedisError as e:
        return _fail(f"{e}. Is `make run` running? Else name its Redis with --redis-url.")
    return 0


def _with_password(args: argparse.Namespace, set_it: Callable[[Redis, str, str], None], done: str) -> int:
    """Read the new password (prompted twice, or one line of stdin), then `set_it(redis, name,
    password)` in the right Redis; print that operator `done`."""
    password = _password(args)
    if password is None:
        return _fail("the passwords differ", 1)

    def change(redis: Redis) -> str:
        set_it(redis, args.name, password)
        return f"operator {args.name.strip().lower()} {done}"

    return _with_redis(args, change)


def ops_add_user(args: argparse.Namespace) -> int:
    """Create an operator for /ops, or set a new password (prompted, or one line of stdin)."""
    from gateway.ops import accounts

    return _with_password(args, accounts.add_user, "can now log in at /ops/login")


def ops_set_password(args: argparse.Namespace) -> int:
    """Set a new password for an existing operator, ending their console sessions at once."""
    from gateway.ops import accounts

    return _with_password(args, accounts.set_password, "has a new password; their sessions are ended")


def ops_remove_user(args: argparse.Namespace) -> int:
    """Remove an operator, ending their console sessions at once."""
    from gateway.ops import accounts

    def remove(redis: Redis) -> str:
        if not accounts.remove_user(redis, args.name):
            raise LookupError(f"there is no operator {args.name.strip().lower()}")
        return f"operator {args.name.strip().lower()} is removed and logged out"

    return _with_redis(args, remove)


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

    run_command = command(
        "run", run, "run Redis (unless REDIS_URL is set), the web app and WORKERS workers on this box"
    )
    run_command.add_argument(
        "--ha",
        action="store_true",
        help="Redis with two replicas, three Sentinels, WORKERS workers, two web processes behind HAProxy",
    )
    restart_command = command(
        "restart", restart, "replace the running `kabootar run`'s web and worker processes one at a time"
    )
    restart_command.add_argument(
        "--rolling", action="store_true", required=True, help="one at a time, while texts keep arriving"
    )
    restart_command.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for it to finish (default 600)"
    )
    command("web", web, "run the web app under WEB_SERVER (Granian or gunicorn) on HOST:PORT")
    command("worker", worker, "run one worker process")
    ops = commands.add_parser(
        "ops", help="operator console accounts", description="operator console accounts"
    )
    actions = ops.add_subparsers(dest="ops_command", required=True, metavar="ACTION")

    def ops_action(name: str, handler: Handler, help: str, password: bool) -> None:
        sub = actions.add_parser(name, help=help, description=handler.__doc__)
        sub.set_defaults(handler=handler)
        sub.add_argument("name", help="the operator's login name")
        if password:
            sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        sub.add_argument(
            "--redis-url", help="the Redis to use (default: REDIS_URL, else the running `kabootar run`'s)"
        )

    ops_action("add-user", ops_add_user, "create an operator (or set a new password)", password=True)
    ops_action("set-password", ops_set_password, "set a new password, ending their sessions", password=True)
    ops_action("remove-user", ops_remove_user, "remove an operator, ending their sessions", password=False)
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
