"""pytest fixtures for the jobq integration tests.

- redis_server: a fresh private redis-server per test (unix socket in
  tmp_path, no TCP, no persistence).
- r: a redis-py client (decode_responses=True) on it.
- http_server: httpfixture.py serving tests/fixtures on 127.0.0.1.
- jobqd: a factory, jobqd(overrides=None, start=True, args=()), returning a
  jobqtest.Daemon whose config is the base config with overrides
  {section: {key: value}}; stopped with SIGTERM at teardown (the test fails
  if it had to be killed, exited non-zero or its log has a sanitizer report).
  A jobqd a test starts itself (jobqtest.Daemon.start) gets the same checks
  at teardown, and is stopped if the test left it running.

Every test is bounded by JOBQ_TEST_TIMEOUT seconds (default 120), enforced
with SIGALRM since pytest-timeout may be missing. jobqd's log is attached to
the report of a failing test.
"""

import os
import signal

import pytest

import jobqtest

TEST_TIMEOUT = int(os.environ.get("JOBQ_TEST_TIMEOUT", "120"))


class JobTestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _forget_daemons(request):
    """Every jobqd a test started outside the jobqd fixture (the cluster,
    sentinel and one-slot tests start their own) is stopped if the test left
    it running, and its log is checked for a sanitizer report, as the
    fixture does for its own."""
    jobqtest.STARTED.clear()
    yield
    owned = {id(d) for d in getattr(request.node, "jobq_daemons", [])}
    others = [d for d in jobqtest.STARTED if id(d) not in owned]
    jobqtest.STARTED.clear()
    left = [d.name for d in others if d.running()]
    problems = jobqtest.stop_daemons(others)
    if left:
        problems.insert(0, "the test left %s running" % ", ".join(left))
    call = getattr(request.node, "rep_call", None)
    if problems and not (call and call.failed):  # a failed test already says so
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _time_limit():
    def expired(signum, frame):
        raise JobTestTimeout("test exceeded %d s (JOBQ_TEST_TIMEOUT)" % TEST_TIMEOUT)

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session", autouse=True)
def _built():
    path = jobqtest.jobqd_path()
    if not os.access(path, os.X_OK):
        pytest.exit("%s is not built (make all, or set JOBQ_BUILD)" % path, returncode=2)


@pytest.fixture
def redis_server(tmp_path):
    server = jobqtest.RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def r(redis_server):
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def http_server(tmp_path):
    server = jobqtest.HttpServer(tmp_path / "http")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def jobqd(request, tmp_path, redis_server):
    daemons = []
    request.node.jobq_daemons = daemons

    def make(overrides=None, start=True, args=(), name=None):
        name = name or ("jobqd" if not daemons else "jobqd%d" % (len(daemons) + 1))
        d = jobqtest.Daemon(tmp_path, redis_server.url, name=name)
        d.write_config(overrides)
        daemons.append(d)
        if start:
            d.start(*args)
        return d

    yield make

    problems = jobqtest.stop_daemons(daemons)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for d in getattr(item, "jobq_daemons", []):
            rep.sections.append(("%s log (%s)" % (d.name, d.log_path), d.log_tail()))
