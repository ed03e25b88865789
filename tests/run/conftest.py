"""The `small` suite of the run tests: two cheap methods on one task, plus any of the user's
methods below, each a way a job can go wrong."""

import os
import sys

import pytest

SMALL = {
    "name": "small", "description": "two cheap methods on one task", "tasks": ["normal_mean"],
    "num_posterior_samples": 300, "metrics": ["c2st", "moments"], "sbc": (20, 10),
}  # fmt: skip
CHEAP = {"exact": {}, "rej_abc": {"num_accepted": 20}}

# The user's methods: one that fails until its cause is fixed, and one for each way a job can
# end its process or never end.
USER_METHODS = """\
import os
import signal
import sys
import time
from pathlib import Path

def flaky(task, observation, num_simulations, seed):
    if not os.path.exists(os.environ["SBIBENCH_TEST_FIXED"]):
        raise RuntimeError("the simulator's licence server is down")
    return task.posterior(observation).sample((50,))

def leave(task, observation, num_simulations, seed):
    sys.exit(0)

def interrupt(task, observation, num_simulations, seed):
    raise KeyboardInterrupt("its own")

def vanish(task, observation, num_simulations, seed):
    os._exit(3)

def killed(task, observation, num_simulations, seed):  # as the out-of-memory killer does
    os.kill(os.getpid(), signal.SIGKILL)

def block(task, observation, num_simulations, seed):  # one blocking call that never returns
    Path(os.environ["SBIBENCH_TEST_PIDS"], str(os.getpid())).touch()
    time.sleep(10**6)

def sabotage(task, observation, num_simulations, seed):  # the run folder's records vanish
    records = Path(os.environ["SBIBENCH_TEST_RECORDS"])
    records.rename(records.with_name("records.moved"))
    records.write_text("a file where the records folder was")
    return task.posterior(observation).sample((50,))
"""


class Small:
    """Makes the small suite: ``small(*functions, cheap=True, **fields)`` loads it, with a
    method ``<function>`` running ``user_methods:<function>`` for each name given (after the
    cheap ones unless ``cheap`` is false); ``small.file(...)`` writes it and returns the path,
    for a run on the command line."""

    def __init__(self, suite_file, make_suite):
        self._suite_file, self._make_suite = suite_file, make_suite

    @staticmethod
    def _fields(functions, cheap, fields):
        methods = dict(CHEAP) if cheap else {}
        for function in functions:
            methods[function] = {"method": "external", "function": f"user_methods:{function}"}
        return {**SMALL, "methods": methods, **fields}

    def __call__(self, *functions, cheap=True, **fields):
        return self._make_suite(**self._fields(functions, cheap, fields))

    def file(self, *functions, cheap=True, **fields):
        return self._suite_file(**self._fields(functions, cheap, fields))


@pytest.fixture
def small(tmp_path, monkeypatch, suite_file, make_suite):
    """The small suite's maker (`Small`), with ``user_methods.py`` importable (also by job
    processes and command-line runs) and the environment its methods read."""
    (tmp_path / "user_methods.py").write_text(USER_METHODS)
    monkeypatch.syspath_prepend(str(tmp_path))  # job processes get sys.path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))  # commands
    monkeypatch.setenv("SBIBENCH_TEST_FIXED", str(tmp_path / "fixed"))
    (tmp_path / "pids").mkdir()
    monkeypatch.setenv("SBIBENCH_TEST_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("SBIBENCH_TEST_RECORDS", str(tmp_path / "run" / "records"))
    return Small(suite_file, make_suite)
