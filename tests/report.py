"""What fault, abuse and privacy tests injected and counted, printed after the run.

pytest hides a passing test's output; these figures are the point of such tests (the
closing notes quote them), so each test records lines with the `report` fixture and
they are printed in the terminal summary under "What the fault and safety tests saw".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

_LINES: list[tuple[str, str]] = []


class Report:
    """Lines about one test: `report("injected", "SIGKILL of a worker every 2 s, 31 times")`."""

    def __init__(self, test_id: str) -> None:
        self.test_id = test_id

    def __call__(self, what: str, detail: object) -> None:
        line = f"{what}: {detail}"
        _LINES.append((self.test_id, line))
        print(line)  # also in the test's own captured output, shown if it fails


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    yield Report(request.node.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _LINES:
        return
    terminalreporter.section("What the fault and safety tests saw")
    current = None
    for test_id, line in _LINES:
        if test_id != current:
            terminalreporter.write_line(test_id)
            current = test_id
        terminalreporter.write_line(f"    {line}")
