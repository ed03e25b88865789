"""The grid: suites, executors (serial, processes, a real Dask LocalCluster) giving identical
records, resume after a killed run, failures that do not stop the grid, and bad input caught up
front."""

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pandas
import pytest

from sbibench.methods import get_method
from sbibench.records import RecordError, completed_keys, load_results, read_records
from sbibench.run.cpus import cpu_name
from sbibench.run.runner import run_suite
from sbibench.run.suite import SuiteError, load_suite

# Columns that are a pure function of the configuration and seeds (not of time or place).
RESULT_COLUMNS = [
    "task", "method", "budget", "seed", "observation", "status", "num_simulations_used",
    "c2st", "c2st_floor", "mmd", "wasserstein", "mean_error", "covariance_error",
    "nll_true_parameters", "sbc_chi2_p_min", "sbc_ecdf_p_min", "coverage_max_deviation", "key",
]  # fmt: skip


# Every method of the quick suite on one task, as small as it runs.
EXECUTOR_SUITE = """\
name = "executors"
description = "the quick suite's methods on a tiny grid"
tasks = ["normal_mean"]
budgets = [200]
seeds = [0]
observations = [1, 2]
num_posterior_samples = 200
metrics = ["c2st", "mmd", "wasserstein", "moments", "nll"]

[sbc]
num_datasets = 20
num_posterior_samples = 10

[methods.exact]
[methods.rej_abc]
num_accepted = 20
[methods.smc_abc]
population_size = 20
[methods.npe]
max_epochs = 3
[methods.snpe_c]
rounds = 2
max_epochs = 2
"""


def _suite(tmp_path, text, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_suite(path)


def _results(folder):
    table = load_results(folder).sort_values(["key", "observation"]).reset_index(drop=True)
    return table[RESULT_COLUMNS]


def test_serial_run_writes_one_record_per_observation_and_resumes(tmp_path, tiny_suite):
    suite = _suite(tmp_path, tiny_suite)
    out = tmp_path / "run"
    # exact and npe: one fit per task; rej_abc: one run per observation.
    assert len(suite.jobs()) == 2 * (1 + 1 + 2)
    summary = run_suite(suite, out, progress=False)
    assert (summary.finished, summary.skipped, summary.failed_records) == (8, 0, 0)
    table = load_results(out)
    assert len(table) == 2 * 3 * 2 and (table["status"] == "ok").all()
    assert table[table["method"] == "exact"]["c2st"].between(0.4, 0.6).all()
    assert table["c2st_floor"].notna().all()
    # SBC ran for the amortized methods only, and its ranks are kept beside the records.
    amortized = table["method"].isin(["exact", "npe"])
    assert table[amortized]["sbc_datasets"].eq(40).all()
    assert table[~amortized]["sbc_datasets"].isna().all()
    assert len(list((out / "records").glob("*.sbc.npz"))) == 4
    assert (out / "results.csv").read_text().count("\n") == 13
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    again = run_suite(suite, out, progress=False)
    assert (again.finished, again.skipped) == (0, 8)
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()}


def _records(folder):
    """Every record of a run folder but its wall times and time stamp, in a stable order."""
    table = pandas.DataFrame(read_records(folder))
    table = table[sorted(c for c in table.columns if not c.startswith("time"))]
    return table.sort_values(["key", "observation"]).reset_index(drop=True)


def test_serial_processes_and_dask_give_identical_records(tmp_path):
    """Every executor runs a job on the same number of torch threads (1), so the order of
    floating-point sums, and with it every digit of every record, is the same."""
    pytest.importorskip("dask.distributed")
    suite = _suite(tmp_path, EXECUTOR_SUITE)
    assert set(suite.methods) == set(load_suite("quick").methods)
    run_suite(suite, tmp_path / "serial", progress=False)
    run_suite(suite, tmp_path / "processes", executor="processes", workers=2, progress=False)
    run_suite(suite, tmp_path / "dask", executor="dask", workers=2, progress=False)
    serial = _records(tmp_path / "serial")
    assert len(serial) == 5 * 2 and (serial["status"] == "ok").all()
    assert (serial["threads"] == 1).all()
    for other in ("processes", "dask"):
        pandas.testing.assert_frame_equal(serial, _records(tmp_path / other), check_exact=True)


# One fast task, two fast methods: an amortized fit and a per-observation run.
OWN_EXECUTOR_SUITE = """\
name = "own"
description = "a grid for executors the caller makes"
tasks = ["normal_mean"]
budgets = [200]
seeds = [0]
observations = [1, 2]
num_posterior_samples = 200
metrics = ["c2st", "mmd", "wasserstein", "moments", "nll"]

[sbc]
num_datasets = 20
num_posterior_samples = 10

[methods.exact]
[methods.rej_abc]
num_accepted = 20
"""


def test_your_own_process_pool_gives_the_named_executors_records_and_stays_open(tmp_path):
    """The pool's workers start on 2 torch threads; each job sets the suite's 1 itself, so the
    records equal the named executor's, and the pool is the caller's to shut down."""
    import multiprocessing

    import torch

    suite = _suite(tmp_path, OWN_EXECUTOR_SUITE)
    run_suite(suite, tmp_path / "serial", progress=False)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=context, initializer=torch.set_num_threads, initargs=(2,)
    ) as pool:
        summary = run_suite(suite, tmp_path / "pool", executor=pool, progress=True)
        assert summary.ok and summary.finished == 3
        assert pool.submit(torch.get_num_threads).result(timeout=60) == 1
    serial = _records(tmp_path / "serial")
    assert len(serial) == 4 and (serial["threads"] == 1).all()
    pandas.testing.assert_frame_equal(serial, _records(tmp_path / "pool"), check_exact=True)
    assert not (tmp_path / "pool" / ".running").exists()


def test_your_own_dask_clients_executor_gives_the_named_executors_records(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    suite = _suite(tmp_path, OWN_EXECUTOR_SUITE)
    run_suite(suite, tmp_path / "named", executor="dask", workers=1, progress=False)
    with distributed.Client(processes=True, n_workers=1, threads_per_worker=1) as client:
        summary = run_suite(suite, tmp_path / "own", executor=client.get_executor(), progress=False)
        assert summary.ok and summary.finished == 3
        assert client.submit(abs, -3).result(timeout=60) == 3  # the client is still open
    pandas.testing.assert_frame_equal(
        _records(tmp_path / "named"), _records(tmp_path / "own"), check_exact=True
    )


def test_a_run_that_stops_early_cancels_its_queued_jobs_and_leaves_your_pool_open(
    tmp_path, monkeypatch
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
    suite = _suite(tmp_path, OWN_EXECUTOR_SUITE)
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
    tmp_path, tiny_suite, executor, options, error, message
):
    suite = _suite(tmp_path, tiny_suite)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        executor = pool if executor == "POOL" else executor
        with pytest.raises(error, match=message):
            run_suite(suite, tmp_path / "run", executor=executor, progress=False, **options)
    assert not (tmp_path / "run").exists()


def test_the_thread_count_is_part_of_the_job_and_must_be_at_least_one(tmp_path, tiny_suite):
    suite = _suite(tmp_path, tiny_suite)
    one, two = suite.jobs(), suite.jobs(threads=2)
    assert [job.threads for job in one] == [1] * len(one)
    assert {job.key for job in one}.isdisjoint(job.key for job in two)
    with pytest.raises(ValueError, match="threads must be a whole number >= 1, got 0"):
        run_suite(suite, tmp_path / "run", threads=0, progress=False)
    with pytest.raises(ValueError, match="workers must be a whole number >= 1, got 0"):
        run_suite(suite, tmp_path / "run", executor="processes", workers=0, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_slurm_executor_through_submitit_gives_the_serial_numbers(tmp_path, tiny_suite):
    """Without a SLURM cluster, submitit's AutoExecutor runs the same job array as local
    processes: the submission, polling and result path are the real ones."""
    pytest.importorskip("submitit")
    suite = _suite(tmp_path, tiny_suite)
    run_suite(suite, tmp_path / "serial", progress=False)
    run_suite(suite, tmp_path / "slurm", executor="slurm", workers=2, progress=False)
    pandas.testing.assert_frame_equal(
        _records(tmp_path / "serial"), _records(tmp_path / "slurm"), check_exact=True
    )


def test_a_killed_run_resumes_with_every_record_once_and_intact(tmp_path, tiny_suite):
    suite_path = tmp_path / "tiny.toml"
    suite_path.write_text(tiny_suite)
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "sbibench",
        "run",
        str(suite_path),
        "--out",
        str(out),
        "--no-progress",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(completed_keys(out)) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(completed_keys(out))
    assert 2 <= written < 8
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} already done" in resumed.stdout
    records = read_records(out)
    keys = [(r["key"], r["observation"]) for r in records]
    assert len(keys) == len(set(keys)) == 12
    assert not [p for p in (out / "records").iterdir() if p.name.startswith(".")]
    # The same numbers as an uninterrupted run.
    run_suite(load_suite(suite_path), tmp_path / "clean", progress=False)
    pandas.testing.assert_frame_equal(_results(out), _results(tmp_path / "clean"), check_exact=True)


def test_a_failing_method_fails_its_runs_and_the_grid_goes_on(tmp_path, monkeypatch, tiny_suite):
    module = tmp_path / "broken_methods.py"
    module.write_text(
        textwrap.dedent("""
        def explode(task, observation, num_simulations, seed):
            raise RuntimeError("simulator exploded at theta=3")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = (
        tiny_suite + '[methods.broken]\nmethod = "external"\nfunction = "broken_methods:explode"\n'
    )
    suite = _suite(tmp_path, text)
    summary = run_suite(suite, tmp_path / "run", progress=False)
    table = load_results(tmp_path / "run")
    broken = table[table["method"] == "broken"]
    assert summary.failed_records == len(broken) == 4
    assert broken["error"].str.contains("RuntimeError: simulator exploded at theta=3").all()
    assert (table[table["method"] != "broken"]["status"] == "ok").all()


def test_cli_run_exits_non_zero_after_finishing_when_a_run_failed(tmp_path, tiny_suite):
    module = tmp_path / "broken_cli.py"
    module.write_text(
        "def explode(task, observation, num_simulations, seed):\n    raise ValueError('no')\n"
    )
    text = tiny_suite.replace('tasks = ["normal_mean", "poisson_gamma"]', 'tasks = ["normal_mean"]')
    text += '[methods.broken]\nmethod = "external"\nfunction = "broken_cli:explode"\n'
    (tmp_path / "s.toml").write_text(text)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "sbibench", "run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert "2 failed records" in result.stdout
    assert len(completed_keys(tmp_path / "o")) == 6


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace('"poisson_gamma"]', '"poisson"]'), "unknown task 'poisson'"),
        (lambda s: s + "[methods.npee]\n", "methods.npee: unknown method 'npee'"),
        (
            lambda s: s.replace("max_epochs = 3", "epochs = 3"),
            "methods.npe: unknown config key.*epochs",
        ),
        (
            lambda s: s.replace("observations = [1, 2]", "observations = [1, 11]"),
            "observations 1..10",
        ),
        (lambda s: "colour = 1\n" + s, "unknown field.*colour"),
        (
            lambda s: s.replace("max_epochs = 3", 'estimator = "nsff"'),
            "methods.npe: estimator must be one of",
        ),
        (
            lambda s: s.replace("max_epochs = 3", "max_epochs = -5"),
            "methods.npe: max_epochs must be a whole number >= 1, got -5",
        ),
        (
            lambda s: s.replace("num_accepted = 20", "num_accepted = 2.5"),
            "methods.rej_abc: num_accepted must be a whole number",
        ),
        (lambda s: s.replace('metrics = ["c2st",', 'metrics = ["c2sst",'), "field 'metrics'"),
        (
            lambda s: s.replace('"poisson_gamma"]', '"linear_gaussian_d50"]').replace(
                "num_posterior_samples = 500", "num_posterior_samples = 5000"
            ),
            "num_posterior_samples is 5000, but task 'linear_gaussian_d50' stores 2000",
        ),
    ],
)
def test_bad_suites_fail_before_any_work(tmp_path, edit, message, tiny_suite):
    path = tmp_path / "bad.toml"
    path.write_text(edit(tiny_suite))
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(path)
    assert str(path) in str(error.value)


def test_unknown_suite_name_lists_the_shipped_ones():
    with pytest.raises(
        SuiteError,
        match="unknown suite 'quik'; shipped: frontier, full, ladder, quick, sbibm, standard",
    ):
        load_suite("quik")


def test_shipped_suites_load():
    for name in ("quick", "standard", "full", "sbibm", "frontier", "ladder"):
        assert load_suite(name).jobs()


def test_variants_stay_out_of_the_well_specified_suites():
    """Misspecified and failing variants run only in the frontier suite, each beside the task
    it varies; the leaderboard suites name well-specified tasks only."""
    from sbibench import get_task, list_tasks

    variants = {n for n in list_tasks() if get_task(n).assumes or get_task(n).failures}
    assert variants == {"normal_mean_misspecified", "normal_mean_failing"}
    for name in ("quick", "standard", "full", "sbibm"):
        assert not variants & set(load_suite(name).tasks), name
    frontier = set(load_suite("frontier").tasks)
    others = {"normal_mean", "beta_binomial", "dirichlet_multinomial", "normal_mean_sets"}
    ladder = set(load_suite("ladder").tasks)
    assert variants | others | ladder == frontier


def test_a_method_table_may_name_the_tasks_it_runs_on(tmp_path, tiny_suite):
    """`tasks` in a method's table keeps it to those of the suite's tasks (a set embedding
    for set data); a task outside the suite's list is refused with the table named."""
    text = tiny_suite + '[methods.only]\nmethod = "exact"\ntasks = ["normal_mean"]\n'
    suite = _suite(tmp_path, text)
    assert {job.task for job in suite.jobs() if job.method == "only"} == {"normal_mean"}
    assert {job.task for job in suite.jobs() if job.method == "exact"} == set(suite.tasks)
    bad = tiny_suite + '[methods.only]\nmethod = "exact"\ntasks = ["two_moons"]\n'
    with pytest.raises(SuiteError, match="methods.only.tasks must be a non-empty list"):
        _suite(tmp_path, bad)


def test_the_sbibm_suite_is_sbibms_grid():
    """Four tasks with exact posteriors, sbibm's three budgets, ten observations, 10,000
    draws, sbibm's C2ST recipe, its eight algorithms (NRE as NRE-B with a ResNet)."""
    suite = load_suite("sbibm")
    assert suite.tasks == (
        "linear_gaussian",
        "gaussian_linear_uniform",
        "gaussian_mixture",
        "two_moons",
    )
    assert suite.budgets == (1000, 10000, 100000) and suite.num_posterior_samples == 10000
    assert len(suite.observations) == 10 and "c2st_sbibm" in suite.metrics
    methods = {label: get_method(name, **config) for label, (name, config) in suite.methods.items()}
    assert sorted(methods) == [
        "nle",
        "npe",
        "nre_b",
        "rej_abc",
        "smc_abc",
        "snle",
        "snpe_c",
        "snre_b",
    ]
    assert methods["nre_b"].classifier == "resnet" and methods["snre_b"].rounds == 10
    assert methods["smc_abc"].population(100_000) == 1000


def test_a_folder_of_another_suite_is_refused(tmp_path, tiny_suite, tiny_run):
    other = _suite(tmp_path, tiny_suite.replace("budgets = [200]", "budgets = [300]"), "other.toml")
    before = sorted(p.name for p in (tiny_run / "records").iterdir())
    with pytest.raises(RecordError, match="holds records of another suite"):
        run_suite(other, tiny_run, progress=False)
    assert sorted(p.name for p in (tiny_run / "records").iterdir()) == before


def test_a_dask_scheduler_that_does_not_answer_is_a_clear_error(tmp_path, tiny_suite):
    pytest.importorskip("dask.distributed")
    with pytest.raises(ConnectionError, match="scheduler at tcp://127.0.0.1:9 does not answer"):
        run_suite(
            _suite(tmp_path, tiny_suite),
            tmp_path / "run",
            executor="dask",
            scheduler="tcp://127.0.0.1:9",
            progress=False,
        )
    assert not completed_keys(tmp_path / "run")


def test_records_are_whole_json_files_with_provenance(tiny_run):
    for path in (tiny_run / "records").glob("*.json"):
        content = json.loads(path.read_text())
        for record in content["records"]:
            assert record["suite"] == "tiny" and record["sbibench_version"]
            assert record["torch_version"] and record["timestamp"] and record["cores"] >= 1
            assert record["threads"] == 1
            assert record["cpu"] == cpu_name()  # stamped in the worker that ran the job


def test_revisions_are_sbibenchs_only_from_its_checkout_and_the_projects_by_name(tmp_path):
    """An installed sbibench inside a user's repository must not record the user's commit as
    its own: a copy of the package in a fresh git repository records only the commit its wheel
    was built from (none for a copy of a source checkout), and names the repository the run
    started in as project_revision."""
    import shutil

    import sbibench

    project = tmp_path / "project"
    shutil.copytree(os.path.dirname(sbibench.__file__), project / "site" / "sbibench")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=u", "-c", "user.email=u@u",
                                                 "commit", "-qm", "user code"]):  # fmt: skip
        subprocess.run(["git", *command], cwd=project, check=True)
    user_commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout.strip()
    code = "from sbibench.records import environment as e; r = e(); print(r['git_revision'], '|', r['project_revision'])"
    env = {**os.environ, "PYTHONPATH": str(project / "site")}
    out = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True,
                         text=True, check=True).stdout.split("|")  # fmt: skip
    built = project / "site" / "sbibench" / "_data" / "REVISION"
    assert out[0].strip() == (built.read_text().strip() if built.is_file() else "")
    assert out[1].strip() == user_commit


def test_progress_names_each_running_job_and_its_phase(tmp_path, tiny_suite):
    """Workers write their job's phase where the driver reads it for the progress line; the
    files go when the jobs are done."""
    from sbibench.run.runner import PhaseFiles, _running_line

    suite = _suite(tmp_path, tiny_suite)
    job = next(j for j in suite.jobs() if j.method == "rej_abc")
    phases = PhaseFiles(tmp_path / ".running")
    phases.reporter(job)("scoring observation 1 (1 of 1)")

    future = concurrent.futures.Future()
    future.set_running_or_notify_cancel()
    line = _running_line({future: job}, {}, phases)
    # the seconds are the job's since it started, the phase is what it does now
    expected = r"running: normal_mean/rej_abc/200/obs 1 \(\d+ s\): scoring observation 1 \(1 of 1\)"
    assert re.fullmatch(expected, line), line
    run_suite(suite, tmp_path / "run", executor="processes", workers=2, progress=True)
    assert not (tmp_path / "run" / ".running").exists()


def _children(pid):
    """The pids of a process's direct children (Linux /proc)."""
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path) as file:
        return [int(child) for child in file.read().split()]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(")")[-1].split()[0] != "Z"  # a zombie has finished
    except FileNotFoundError:
        return False


@pytest.mark.slow  # a real process-pool run, stopped and resumed: 20 s
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_the_run_and_its_workers_and_keeps_finished_records(tmp_path, tiny_suite):
    """`kill` (SIGTERM) on a process-pool run: it exits as Ctrl-C does (status 130, the
    interrupted line and no traceback), results.csv holds the finished jobs, no worker
    process goes on computing, and a re-run resumes."""
    suite_path = tmp_path / "tiny.toml"
    suite_path.write_text(tiny_suite)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "sbibench", "run", str(suite_path), "--out", str(out),
               "--no-progress", "--executor", "processes", "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(completed_keys(out)) < 1 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be stopped"
    workers = _children(process.pid)
    assert len(workers) >= 2  # the pool's processes (and multiprocessing's resource tracker)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    stderr = process.stderr.read().decode()
    assert "interrupted; finished records are kept" in stderr
    assert "Traceback" not in stderr, stderr  # Python 3.11's pool raised InvalidStateError
    assert set(load_results(out / "results.csv")["key"]) == set(completed_keys(out))
    deadline = time.time() + 30
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]
    written = len(completed_keys(out))
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} already done" in resumed.stdout


def test_a_task_may_score_fewer_observations_than_the_others(tmp_path, tiny_suite):
    """`task_observations` gives one task its own observations (a ladder rung with five beside
    tasks with ten); the other tasks keep the suite's, and each is checked against its task."""
    text = tiny_suite.replace("[sbc]", "[task_observations]\npoisson_gamma = [2]\n\n[sbc]")
    suite = _suite(tmp_path, text)
    observed = {(job.task, job.observations) for job in suite.jobs() if job.method == "exact"}
    assert observed == {("normal_mean", (1, 2)), ("poisson_gamma", (2,))}
    assert {job.observations for job in suite.jobs() if job.task == "poisson_gamma"} == {(2,)}
    for bad, message in [
        ("two_moons = [1]", "task_observations names 'two_moons', not among the suite's tasks"),
        ("poisson_gamma = [11]", "task 'poisson_gamma' has observations 1..10"),
        ("poisson_gamma = []", "task_observations.poisson_gamma' must be a non-empty list"),
    ]:
        with pytest.raises(SuiteError, match=message):
            _suite(tmp_path, tiny_suite.replace("[sbc]", f"[task_observations]\n{bad}\n\n[sbc]"))
