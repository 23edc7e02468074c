"""Unit-test fixtures: the fault matrix's table, printed at the end of
the run (cases run, consistent, and the inconsistent ones)."""
import json
import os

import pytest

_MATRIX = pytest.StashKey[list]()


@pytest.fixture
def fault_matrix(request):
    """The list each fault-matrix case appends (workflow, step, fault,
    problems) to."""
    return request.config.stash.setdefault(_MATRIX, [])


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(_MATRIX, [])
    if not rows:
        return
    dump = os.environ.get("DROVER_FAULT_MATRIX_JSON")
    if dump:
        with open(dump, "w") as f:
            json.dump(rows, f, indent=1)
    bad = [r for r in rows if r[3]]
    tr = terminalreporter
    tr.section("fault matrix")
    tr.write_line(f"cases run: {len(rows)}, consistent: "
                  f"{len(rows) - len(bad)}, inconsistent: {len(bad)}")
    by_workflow = {}
    for label, _step, _fault, problems, _known in rows:
        counts = by_workflow.setdefault(label, [0, 0])
        counts[0] += 1
        counts[1] += bool(problems)
    for label, (run, wrong) in by_workflow.items():
        tr.write_line(f"  {label:16} {run:4} run, {wrong:4} inconsistent")
    causes = {}
    for label, step, fault, problems, known in bad:
        tag = known[0] if known else "NEW"
        if known:
            causes[known[0]] = known[1]
        tr.write_line(f"  INCONSISTENT {label} / {step} / {fault}: {tag}"
                      + ("" if known else f": {problems[0]}"))
    for tag, why in causes.items():
        tr.write_line(f"  cause {tag}: {why}")


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """A database migrated to head once, copied for each test."""
    from agent.controller.db import upgrade
    url = pg_server.create_database("drover_template")
    upgrade(url)
    return "drover_template"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The URL of a migrated, empty state store: SQLite, then PostgreSQL
    (a database of the test's own)."""
    if request.param == "sqlite":
        from agent.controller.db import upgrade
        url = f"sqlite:///{tmp_path}/drover.db"
        upgrade(url)
        yield url
        return
    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = f"s{os.getpid()}_{tmp_path.name}".replace("-", "_")[:60]
    yield server.create_database(name, template=template)
    server.drop_database(name)
