"""Suites: the shipped ones, what a suite file may leave out, and bad input caught when the
file loads, naming the file and the field."""

import pytest

from sbibench.methods import get_method
from sbibench.registry import list_suites
from sbibench.run.suite import SuiteError, load_suite

SHIPPED = ["frontier", "full", "ladder", "quick", "sbi-crosscheck", "sbibm", "standard"]


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
def test_bad_suites_fail_before_any_work(suite_file, edit, message, tiny_suite):
    path = suite_file(edit(tiny_suite), "bad.toml")
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(path)
    assert str(path) in str(error.value)


def test_a_suite_may_leave_out_its_description_and_sbc_table(make_suite):
    """Without them: description "", and calibration over 200 datasets of 100 draws."""
    suite = make_suite(description=None, sbc=None)
    assert "description" not in suite.text and "[sbc]" not in suite.text
    assert (suite.description, suite.sbc_datasets, suite.sbc_samples) == ("", 200, 100)
    amortized = [job for job in suite.jobs() if job.amortized]
    assert amortized and {(job.sbc_datasets, job.sbc_samples) for job in amortized} == {(200, 100)}


def test_an_sbc_table_may_set_one_key_and_no_other(suite_file, make_suite):
    """``[sbc] num_datasets = 0`` alone turns calibration off, draws at their default; a key
    that is neither of the two is refused with the file named."""
    suite = make_suite(sbc={"num_datasets": 0})
    assert (suite.sbc_datasets, suite.sbc_samples) == (0, 100)
    assert {job.sbc_datasets for job in suite.jobs()} == {0}
    path = suite_file(sbc={"num_dataset": 40, "num_posterior_samples": 20})
    with pytest.raises(SuiteError, match=r"\[sbc\] may set only num_datasets and") as error:
        load_suite(path)
    assert str(path) in str(error.value) and "'num_dataset': 40" in str(error.value)


def test_unknown_suite_name_lists_the_shipped_ones():
    with pytest.raises(SuiteError, match=f"unknown suite 'quik'; shipped: {', '.join(SHIPPED)}"):
        load_suite("quik")


def test_shipped_suites_load():
    assert list_suites() == SHIPPED
    for name in SHIPPED:
        suite = load_suite(name)
        assert suite.name == name and suite.description and suite.jobs()


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


def test_a_method_table_may_name_the_tasks_it_runs_on(make_suite, tiny_suite):
    """`tasks` in a method's table keeps it to those of the suite's tasks (a set embedding
    for set data); a task outside the suite's list is refused with the table named."""
    suite = make_suite(tiny_suite + '[methods.only]\nmethod = "exact"\ntasks = ["normal_mean"]\n')
    assert {job.task for job in suite.jobs() if job.method == "only"} == {"normal_mean"}
    assert {job.task for job in suite.jobs() if job.method == "exact"} == set(suite.tasks)
    bad = tiny_suite + '[methods.only]\nmethod = "exact"\ntasks = ["two_moons"]\n'
    with pytest.raises(SuiteError, match="methods.only.tasks must be a non-empty list"):
        make_suite(bad)


def test_a_method_table_may_name_its_own_seeds(make_suite, tiny_suite):
    """`seeds` in a method's table gives it those seeds instead of the suite's (training
    seeds of an amortized method: one fit each); its seed-0 job is the same job as without
    the field, so records made before it was added are reused. Bad seeds name the table."""
    plain = make_suite(tiny_suite)
    suite = make_suite(tiny_suite.replace("[methods.npe]\n", "[methods.npe]\nseeds = [0, 1, 2]\n"))
    npe = [job for job in suite.jobs() if job.method == "npe"]
    assert sorted({job.seed for job in npe}) == [0, 1, 2]
    assert len(npe) == 3 * len(suite.tasks)  # amortized: one fit per (task, seed)
    assert {job.seed for job in suite.jobs() if job.method != "npe"} == {0}
    assert {j.key for j in plain.jobs()} < {j.key for j in suite.jobs()}
    for bad, why in (("[]", "non-empty list"), ("[1, 1]", "lists 1 twice"), ("[-1]", ">= 0")):
        text = tiny_suite.replace("[methods.npe]\n", f"[methods.npe]\nseeds = {bad}\n")
        with pytest.raises(SuiteError, match=f"methods.npe.seeds.*{why}"):
            make_suite(text)


def test_a_task_may_score_fewer_observations_than_the_others(make_suite):
    """`task_observations` gives one task its own observations (a ladder rung with five beside
    tasks with ten); the other tasks keep the suite's, and each is checked against its task."""
    suite = make_suite(task_observations={"poisson_gamma": [2]})
    observed = {(job.task, job.observations) for job in suite.jobs() if job.method == "exact"}
    assert observed == {("normal_mean", (1, 2)), ("poisson_gamma", (2,))}
    assert {job.observations for job in suite.jobs() if job.task == "poisson_gamma"} == {(2,)}
    for bad, message in [
        ({"two_moons": [1]}, "task_observations names 'two_moons', not among the suite's tasks"),
        ({"poisson_gamma": [11]}, "task 'poisson_gamma' has observations 1..10"),
        ({"poisson_gamma": []}, "task_observations.poisson_gamma' must be a non-empty list"),
    ]:
        with pytest.raises(SuiteError, match=message):
            make_suite(task_observations=bad)


def test_the_thread_count_is_part_of_the_job(make_suite):
    suite = make_suite()
    one, two = suite.jobs(), suite.jobs(threads=2)
    assert [job.threads for job in one] == [1] * len(one)
    assert {job.key for job in one}.isdisjoint(job.key for job in two)
    with pytest.raises(ValueError, match="threads must be a whole number >= 1, got 0"):
        suite.jobs(threads=0)


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


@pytest.mark.parametrize("label", ["npe/maf", "..", ".npe", "npe maf", "npé", "a\\b", "x" * 65])
def test_a_method_label_that_cannot_be_a_file_name_is_refused_when_the_suite_loads(
    suite_file, tiny_suite, label
):
    """A label is part of every record's file name (records/<task>-<label>-<hash>.json):
    one that is not a plain file name stops the suite at load, before any work."""
    path = suite_file(tiny_suite + f'[methods."{label}"]\nmethod = "exact"\n'.replace("\\", "\\\\"))
    with pytest.raises(SuiteError, match="cannot be part of a record's file name") as error:
        load_suite(path)
    assert str(path) in str(error.value) and repr(label) in str(error.value)
    assert "letters a-z, A-Z, digits, '_', '-' and '.', not starting with '.'" in str(error.value)


def test_labels_of_letters_digits_underscores_dashes_and_dots_load(make_suite, tiny_suite):
    suite = make_suite(tiny_suite + '[methods."NPE-maf.v2_0"]\nmethod = "exact"\n')
    assert "NPE-maf.v2_0" in suite.methods and "x" * 64 not in suite.methods


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", ".hidden", "", "."])
def test_a_suite_name_that_would_leave_the_runs_folder_is_refused(suite_file, name):
    """`sbibench run` writes into runs/<name> by default: the name follows the labels' rule."""
    path = suite_file(name=name, filename="bad.toml")
    with pytest.raises(SuiteError, match="field 'name' is .*; a suite's name is 1 to 64") as error:
        load_suite(path)
    assert str(path) in str(error.value) and repr(name) in str(error.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"budgets": [200, 300, 200]}, "field 'budgets' lists 200 twice"),
        ({"seeds": [0, 1, 1]}, "field 'seeds' lists 1 twice"),
        ({"observations": [2, 1, 2]}, "field 'observations' lists 2 twice"),
        ({"task_observations": {"poisson_gamma": [1, 1]}},
         "field 'task_observations.poisson_gamma' lists 1 twice"),
        ({"tasks": ["normal_mean", "normal_mean"]}, "field 'tasks' lists 'normal_mean' twice"),
    ],
)  # fmt: skip
def test_a_budget_seed_observation_or_task_listed_twice_is_refused(suite_file, fields, message):
    """Listed twice, its jobs would run twice and count twice in the check."""
    path = suite_file(filename="twice.toml", **fields)
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("seed", [2**63, 2**64, -1])
def test_a_seed_outside_0_to_2_63_minus_1_is_refused(suite_file, seed):
    path = suite_file(seeds=[0, seed], filename="seeds.toml")
    with pytest.raises(SuiteError, match=f"field 'seeds' holds {seed}; need whole numbers") as e:
        load_suite(path)
    assert str(path) in str(e.value)


def test_the_largest_seed_runs_end_to_end(make_suite, tmp_path):
    """Seed 2**63 - 1 reaches torch's generators (plus a round number in a sequential method),
    the record files and results.csv, whose seed column pandas reads back as int64."""
    import pandas as pd
    import torch

    from sbibench.checks import MAX_SEED
    from sbibench.records import load_results
    from sbibench.run.runner import run_suite

    torch.Generator().manual_seed(MAX_SEED + 10)  # seed + r, the round r of a sequential method
    suite = make_suite(
        tasks=["normal_mean"], budgets=[100], seeds=[MAX_SEED], observations=[1],
        metrics=["moments"], sbc=(0, 10),
        methods={"rej_abc": {"num_accepted": 5}, "snpe_c": {"rounds": 2, "max_epochs": 1}},
    )  # fmt: skip
    summary = run_suite(suite, tmp_path / "run", progress=False)
    assert summary.ok, summary.failures
    for table in (load_results(tmp_path / "run"), pd.read_csv(summary.table)):
        assert set(table["status"]) == {"ok"} and len(table) == 2
        assert table["seed"].dtype == "int64" and set(table["seed"]) == {MAX_SEED}
