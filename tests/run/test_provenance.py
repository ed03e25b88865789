"""What a record must share with today's code and data to be reused: the modules a job's
numbers go through, their digest, and the task's."""

import re

from sbibench import __version__
from sbibench.records import PROVENANCE
from sbibench.run.provenance import code_digest, job_provenance, module_closure, task_digest


def test_the_closure_holds_what_a_job_runs_and_not_the_report_or_the_command():
    closure = module_closure("sbibench.methods.abc", "sbibench.models.linear_gaussian")
    assert list(closure) == sorted(set(closure))
    for module in ("sbibench.methods.abc", "sbibench.models.linear_gaussian", "sbibench.methods",
                   "sbibench.models", "sbibench"):  # fmt: skip
        assert module in closure, module  # the roots, and the packages they sit in
    worker = module_closure("sbibench.run.worker")
    assert {"sbibench.run.worker", "sbibench.scoring", "sbibench.records", "sbibench.task"} <= set(
        worker
    )
    for module in ("sbibench.cli", "sbibench.report.render", "sbibench.report.check",
                   "sbibench.run.runner", "sbibench.methods.npe"):  # fmt: skip
        assert module not in worker, module
    assert module_closure("numpy", "sbibench.nowhere") == ()  # not sbibench's: nothing


def test_the_code_digest_is_stable_and_tells_methods_apart():
    family = "sbibench.models.linear_gaussian"
    abc = code_digest("sbibench.methods.abc", family)
    assert re.fullmatch("[0-9a-f]{16}", abc)
    assert code_digest("sbibench.methods.abc", family) == abc
    assert code_digest("sbibench.methods.oracle", family) != abc


def test_a_jobs_provenance_names_the_version_the_code_and_the_task():
    fields = job_provenance("normal_mean", "rej_abc")
    assert tuple(fields) == PROVENANCE
    assert fields["sbibench_version"] == __version__
    assert fields["code_digest"] == code_digest(
        "sbibench.methods.abc", "sbibench.models.linear_gaussian"
    )
    assert fields["task_digest"] == task_digest("normal_mean")
    # a variant shares its task's model and reference files, but not its card
    assert task_digest("normal_mean_failing") != task_digest("normal_mean")
    assert job_provenance("normal_mean", "exact")["code_digest"] != fields["code_digest"]
