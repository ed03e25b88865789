"""Executors: the default one, the workers it starts, and every executor (serial, processes,
a real Dask LocalCluster, the caller's own pool or client, submitit) giving identical records;
bad executors and options caught before any work."""

import concurrent.futures

import pandas
import pytest

from sbibench.records import completed_keys, read_records
from sbibench.run.executors import EXECUTORS, default_workers
from sbibench.run.runner import run_suite
from sbibench.run.suite import load_suite

# One fast task, two fast methods: an amortized fit and a per-observation run.
OWN_EXECUTOR_GRID = {
    "name": "own", "description": "a grid for executors the caller makes",
    "tasks": ["normal_mean"], "num_posterior_samples": 200, "sbc": (20, 10),
    "methods": {"exact": {}, "rej_abc": {"num_accepted": 20}},
}  # fmt: skip
# Every method of the quick suite on one task, as small as it runs.
EXECUTOR_GRID = {
    **OWN_EXECUTOR_GRID, "name": "executors",
    "description": "the quick suite's methods on a tiny grid",
    "methods": {**OWN_EXECUTOR_GRID["methods"], "smc_abc": {"population_size": 20},
                "npe": {"max_epochs": 3}, "snpe_c": {"rounds": 2, "max_epochs": 2}},
}  # fmt: skip


def _records(folder):
    """Every record of a run folder but its wall times and time stamp, in a stable order."""
    table = pandas.DataFrame(read_records(folder))
    table = table[sorted(c for c in table.columns if not c.startswith("time"))]
    return table.sort_values(["key", "observation"]).reset_index(drop=True)


def _same_records(folder, other):
    pandas.testing.assert_frame_equal(_records(folder), _records(other), check_exact=True)


def test_the_command_runs_each_job_in_a_process_of_its_own_by_default():
    from sbibench.cli import _parser

    args = _parser().parse_args(["run", "quick"])
    assert args.executor == "processes" and args.executor in EXECUTORS


def test_default_workers_count_the_cpus_this_process_may_use(monkeypatch):
    import sbibench.run.executors

    monkeypatch.setattr(sbibench.run.executors, "available_cpus", lambda: 1)
    assert default_workers("processes") == 1
    monkeypatch.setattr(sbibench.run.executors, "available_cpus", lambda: 4)
    assert default_workers("processes") == 4 and default_workers("processes", threads=3) == 1


def test_default_workers_divide_the_cpus_by_the_threads():
    assert default_workers("processes", threads=1, cpus=6) == 6
    assert default_workers("dask", threads=4, cpus=6) == 1
    assert default_workers("processes", threads=8, cpus=6) == 1
    assert default_workers("serial", threads=1, cpus=6) == 1
    with pytest.raises(ValueError, match="threads must be a whole number >= 1, got 0"):
        default_workers("processes", threads=0)
    with pytest.raises(ValueError, match="unknown executor 'threads'; choose from serial"):
        default_workers("threads")


def test_serial_processes_and_dask_give_identical_records(tmp_path, make_suite):
    """Every executor runs a job on the same number of torch threads (1), so the order of
    floating-point sums, and with it every digit of every record, is the same."""
    pytest.importorskip("dask.distributed")
    suite = make_suite(**EXECUTOR_GRID)
    assert set(suite.methods) == set(load_suite("quick").methods)
    run_suite(suite, tmp_path / "serial", progress=False)
    run_suite(suite, tmp_path / "processes", executor="processes", workers=2, progress=False)
    run_suite(suite, tmp_path / "dask", executor="dask", workers=2, progress=False)
    serial = _records(tmp_path / "serial")
    assert len(serial) == 5 * 2 and (serial["status"] == "ok").all()
    assert (serial["threads"] == 1).all()
    for other in ("processes", "dask"):
        _same_records(tmp_path / "serial", tmp_path / other)


def test_your_own_process_pool_gives_the_named_executors_records_and_stays_open(
    tmp_path, make_suite
):
    """The pool's workers start on 2 torch threads; each job runs in a process of its own on
    the suite's 1, so the records equal the named executor's, the pool's worker is left as it
    was, and the pool is the caller's to shut down."""
    import multiprocessing

    import torch

    suite = make_suite(**OWN_EXECUTOR_GRID)
    run_suite(suite, tmp_path / "serial", progress=False)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=context, initializer=torch.set_num_threads, initargs=(2,)
    ) as pool:
        summary = run_suite(suite, tmp_path / "pool", executor=pool, progress=True)
        assert summary.ok and summary.finished == 3
        assert pool.submit(torch.get_num_threads).result(timeout=60) == 2
    serial = _records(tmp_path / "serial")
    assert len(serial) == 4 and (serial["threads"] == 1).all()
    _same_records(tmp_path / "serial", tmp_path / "pool")
    assert not (tmp_path / "pool" / ".running").exists()


def test_your_own_dask_clients_executor_gives_the_named_executors_records(tmp_path, make_suite):
    distributed = pytest.importorskip("dask.distributed")
    suite = make_suite(**OWN_EXECUTOR_GRID)
    run_suite(suite, tmp_path / "named", executor="dask", workers=1, progress=False)
    with distributed.Client(processes=True, n_workers=1, threads_per_worker=1) as client:
        summary = run_suite(suite, tmp_path / "own", executor=client.get_executor(), progress=False)
        assert summary.ok and summary.finished == 3
        assert client.submit(abs, -3).result(timeout=60) == 3  # the client is still open
    _same_records(tmp_path / "named", tmp_path / "own")


def test_a_run_that_stops_early_cancels_its_queued_jobs_and_leaves_your_pool_open(
    tmp_path, monkeypatch, make_suite
):
    import sbibench.run.runner

    class Pool(concurrent.futures.ThreadPoolExecutor):
        """A thread pool that keeps the futures it hands out."""

        def __init__(self, workers):
            super().__init__(workers)
            self.futures = []

        def submit(self, *args, **kwargs):
            future = super().submit(*args, **kwargs)
            self.futures.append(future)
            return future

    def full_disk(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(sbibench.run.runner, "write_job", full_disk)
    suite = make_suite(**OWN_EXECUTOR_GRID)
    with Pool(1) as pool:
        with pytest.raises(OSError, match="no space left"):
            run_suite(suite, tmp_path / "run", executor=pool, progress=False)
        assert len(pool.futures) == 3 and pool.futures[-1].cancelled()
        assert pool.submit(abs, -1).result() == 1


@pytest.mark.parametrize(
    ("executor", "options", "error", "message"),
    [
        ("threads", {}, ValueError, "unknown executor 'threads'; choose from serial, processes"),
        ("processes", {"scheduler": "tcp://h:1"}, ValueError, "needs executor 'dask'"),
        (object(), {}, TypeError, "an object with submit"),
        ("POOL", {"workers": 2}, ValueError, "workers applies to an executor sbibench builds"),
        ("POOL", {"scheduler": "tcp://h:1"}, ValueError, "scheduler applies to an executor"),
    ],
)
def test_bad_executors_and_options_fail_before_any_work(
    tmp_path, make_suite, executor, options, error, message
):
    suite = make_suite()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        executor = pool if executor == "POOL" else executor
        with pytest.raises(error, match=message):
            run_suite(suite, tmp_path / "run", executor=executor, progress=False, **options)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_slurm_executor_through_submitit_gives_the_serial_numbers(tmp_path, make_suite):
    """Without a SLURM cluster, submitit's AutoExecutor runs the same job array as local
    processes: the submission, polling and result path are the real ones."""
    pytest.importorskip("submitit")
    suite = make_suite()
    run_suite(suite, tmp_path / "serial", progress=False)
    run_suite(suite, tmp_path / "slurm", executor="slurm", workers=2, progress=False)
    _same_records(tmp_path / "serial", tmp_path / "slurm")


def test_a_dask_scheduler_that_does_not_answer_is_a_clear_error(tmp_path, make_suite):
    pytest.importorskip("dask.distributed")
    with pytest.raises(ConnectionError, match="scheduler at tcp://127.0.0.1:9 does not answer"):
        run_suite(
            make_suite(),
            tmp_path / "run",
            executor="dask",
            scheduler="tcp://127.0.0.1:9",
            progress=False,
        )
    assert not completed_keys(tmp_path / "run")
