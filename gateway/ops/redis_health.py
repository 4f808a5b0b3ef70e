"""The console's Redis section: the Redis this app reaches (primary or replica, whether it
takes writes, its replicas and how far behind each is), what each Sentinel says (which
primary, whether they agree, whether they could fail over now), and the last change of
primary with how long writes failed around it (recorded by `store.primary`).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from redis import Redis
from redis.exceptions import AuthenticationError, ConnectionError, RedisError, TimeoutError

from gateway.config import Config
from gateway.runtime import Runtime
from gateway.store import connect, primary

# A Sentinel that is down or black-holed must not stall the console: each is asked once,
# all at the same time, and given this long.
SENTINEL_TIMEOUT = 0.5


@dataclass(frozen=True)
class Replica:
    address: str
    state: str  # as the primary sees it: online, wait_bgsave, send_bulk …
    behind: int  # bytes of the replication stream it has not confirmed yet
    lag: int  # seconds since it last confirmed


@dataclass(frozen=True)
class SentinelView:
    address: str
    primary: str | None  # the primary it names; None when it did not answer
    primary_run_id: str  # that server's run_id: compared with ours, whatever addresses NAT shows
    quorum: int | None  # Sentinels that must agree the primary is down
    sentinels: int | None  # Sentinels it knows of, itself included
    flags: str  # what it thinks of that primary beyond "master": s_down, o_down, failover_in_progress
    can_fail_over: bool  # SENTINEL CKQUORUM: enough Sentinels reachable to authorise a failover
    error: str  # why it did not answer, or why it could not fail over

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "id": self.address, "can_fail_over": "yes" if self.can_fail_over else "no"}


def _replicas(info: dict[str, Any]) -> list[Replica]:
    """The replicas a primary lists in INFO replication (slave0, slave1, …)."""
    head = int(info.get("master_repl_offset", 0))
    rows = [info[k] for k in sorted(info) if k.startswith("slave") and isinstance(info[k], dict)]
    return [
        Replica(
            address=f"{r.get('ip')}:{r.get('port')}",
            state=str(r.get("state", "")),
            behind=max(0, head - int(r.get("offset", 0))),
            lag=int(r.get("lag", 0)),
        )
        for r in rows
    ]


def _plainly(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {SENTINEL_TIMEOUT:g} s"
    if isinstance(error, AuthenticationError):
        return "refused REDIS_SENTINEL_PASSWORD"
    if isinstance(error, ConnectionError):
        return "cannot be reached"
    return str(error)[:200]


def _ask(client: Redis, address: str, name: str) -> SentinelView:
    """One Sentinel's view of the primary it monitors under `name`, in one round trip."""
    try:
        pipe = client.pipeline(transaction=False)
        pipe.sentinel_master(name)
        pipe.sentinel_ckquorum(name)
        master, quorum_check = pipe.execute(raise_on_error=False)
        if isinstance(master, Exception):
            raise master
    except RedisError as e:
        return SentinelView(address, None, "", None, None, "", False, _plainly(e))
    flags = [f for f in str(master.get("flags", "")).split(",") if f and f != "master"]
    return SentinelView(
        address=address,
        primary=f"{master['ip']}:{master['port']}",
        primary_run_id=str(master.get("runid", "")),
        quorum=int(master["quorum"]),
        sentinels=int(master["num-other-sentinels"]) + 1,
        flags=", ".join(flags) or "up",
        # redis-py reads CKQUORUM's "OK 3 usable Sentinels…" as False: only an error says no.
        can_fail_over=not isinstance(quorum_check, Exception),
        error=_plainly(quorum_check) if isinstance(quorum_check, Exception) else "",
    )


def read_sentinels(config: Config) -> list[SentinelView]:
    """Every configured Sentinel's view, asked all at once (redis-py's Sentinel clients)."""
    if not config.redis_sentinels:
        return []
    sentinel = connect.sentinels(config, timeout=SENTINEL_TIMEOUT, decode=True)
    addresses = [f"{host}:{port}" for host, port in config.redis_sentinels]
    try:
        with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
            return list(
                pool.map(_ask, sentinel.sentinels, addresses, [config.redis_sentinel_master] * len(addresses))
            )
    finally:
        for client in sentinel.sentinels:
            client.close()


def _agreement(views: list[SentinelView], reached: primary.Reached) -> dict[str, object]:
    named = Counter(v.primary for v in views if v.primary)
    chosen, agreeing = named.most_common(1)[0] if named else (None, 0)
    quorums = [v.quorum for v in views if v.quorum is not None]
    # Sentinels learn a new primary's run_id from its INFO, a few seconds after a failover.
    run_ids = {v.primary_run_id for v in views if v.primary == chosen} - {""}
    return {
        "configured": len(views),
        "answered": sum(v.primary is not None for v in views),
        "primary": chosen,
        "agreeing": agreeing,
        "quorum": max(quorums) if quorums else None,
        # Whether the primary they name is the server this app writes to (by run_id).
        "name_ours": reached.run_id in run_ids if run_ids else chosen == reached.address,
    }


def _state(reached: primary.Reached) -> str:
    if reached.writable:
        return "primary, taking writes"
    if reached.role == "replica":
        info = reached.replication
        return (
            f"replica of {info.get('master_host')}:{info.get('master_port')}"
            f" (link {info.get('master_link_status')}): refuses writes"
        )
    return f"primary, refusing writes: {reached.refused}"


def read(runtime: Runtime, now: float, sentinels: bool = True) -> dict[str, Any]:
    """The Redis section's figures, JSON-ready (the Sentinels' views only if `sentinels`);
    records the primary this app reaches (`store.primary.observe`)."""
    reached = primary.observe(runtime.redis, now)
    change = primary.last_change(runtime.redis)
    views = read_sentinels(runtime.config) if sentinels else []
    info = reached.replication
    return {
        "address": reached.address,
        "role": reached.role,
        "writable": reached.writable,
        "takes_no_writes": not reached.writable,  # the page's alarm: true is red
        "refused": reached.refused,
        "state": _state(reached),
        "replicas": [{**asdict(r), "id": r.address} for r in _replicas(info)],
        "primary_link": (
            None
            if reached.role == "primary"
            else {
                "address": f"{info.get('master_host')}:{info.get('master_port')}",
                "status": info.get("master_link_status"),
                "last_io": info.get("master_last_io_seconds_ago"),
            }
        ),
        "sentinels": {**_agreement(views, reached), "list": [v.to_json() for v in views]},
        "last_change": None
        if change is None
        else {
            "at": change.at,
            "from": change.before,
            "to": change.after,
            "kind": change.kind,
            "down_for": change.down_for,
        },
    }
