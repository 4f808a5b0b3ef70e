"""The code keeps the shape docs/ARCHITECTURE.md draws: wings whose imports point one way,
provider SDKs only in the provider wing, and Redis vocabulary that loads no web framework."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A wing may import only wings of a lower rank (its own modules aside): the data's path,
# read from the top. Wings of one rank do not know each other.
RANK = {
    "config": 0,
    "phones": 0,
    "segments": 0,
    "store": 1,
    "runtime": 2,
    "microblog": 3,
    "providers": 3,
    "outbox": 4,
    "commands": 5,
    "ops": 5,
    "pipeline": 6,
    "web": 7,
    "workers": 7,
    "box": 8,
}
# The worker process runs jobs: it never loads the console, the web app or the supervisor.
NEVER = {"workers": {"ops", "web", "box"}}
PROVIDER_SDKS = ("twilio", "android_sms_gateway")


def _modules() -> Iterator[tuple[str, Path]]:
    for package in ("gateway", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _wing(module: str) -> str:
    parts = module.split(".")
    return "workers" if parts[0] == "workers" else parts[1]


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, by its dotted name (names imported from a package count
    as that package's modules)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _arrows() -> Iterator[tuple[str, str, str]]:
    """(module, the wing it is in, a wing it imports) for every import between wings."""
    for module, path in _modules():
        if module == "gateway":
            continue
        for imported in _imports(path):
            if imported.split(".")[0] not in ("gateway", "workers") or imported == "gateway":
                continue
            here, there = _wing(module), _wing(imported)
            if here != there:
                yield module, here, there


def test_every_module_belongs_to_a_wing_of_known_rank():
    assert {_wing(m) for m, _ in _modules() if m != "gateway"} == set(RANK)


def test_imports_between_wings_point_one_way():
    backwards = sorted(
        f"{module} imports {there}"
        for module, here, there in _arrows()
        if RANK[there] >= RANK[here] or there in NEVER.get(here, ())
    )
    assert backwards == []


@pytest.mark.parametrize("sdk", PROVIDER_SDKS)
def test_only_the_provider_wing_imports_a_providers_sdk(sdk: str):
    outside = sorted(
        module
        for module, path in _modules()
        if not module.startswith("gateway.providers")
        and any(name == sdk or name.startswith(sdk + ".") for name in _imports(path))
    )
    assert outside == []


def _loaded(imports: tuple[str, ...], packages: tuple[str, ...]) -> list[str]:
    """The modules of `packages` (each with its submodules) that a fresh interpreter has
    loaded once it imported `imports`."""
    inside = tuple(f"{p}." for p in packages)
    code = f"import json, sys, {', '.join(imports)}; print(json.dumps(sorted(sys.modules)))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return [m for m in json.loads(found.stdout) if m in packages or m.startswith(inside)]


def test_the_key_and_queue_modules_load_no_web_framework_and_no_provider_sdk():
    unwanted = ("flask", "werkzeug", *PROVIDER_SDKS)
    assert _loaded(("gateway.store.keys", "gateway.store.queues"), unwanted) == []
    assert "flask" in _loaded(("gateway.web",), unwanted)  # the check sees a web framework that loads


def test_a_worker_process_loads_no_console_and_no_web_app():
    never = tuple(f"gateway.{wing}" for wing in sorted(NEVER["workers"]))
    assert _loaded(("workers.worker", "workers.jobs"), never) == []
