"""A finished run on three rungs of the dimension ladder, shared by the report's tests."""

import pytest


@pytest.fixture(scope="session")
def ladder_run(tmp_path_factory, suite_text):
    """Three rungs of linear_gaussian (D = 2, 5, 10), exact and rejection ABC, one observation."""
    from sbibench.run.runner import run_suite
    from sbibench.run.suite import load_suite

    folder = tmp_path_factory.mktemp("rungs")
    text = suite_text(
        "rungs", description="three rungs of the dimension ladder",
        tasks=["linear_gaussian_d2", "linear_gaussian_d5", "linear_gaussian"], budgets=[300],
        observations=[1], metrics=["c2st"], sbc=(0, 10),
        methods={"exact": {}, "rej_abc": {"num_accepted": 30}},
    )  # fmt: skip
    (folder / "rungs.toml").write_text(text)
    run_suite(load_suite(folder / "rungs.toml"), folder / "run", progress=False)
    return folder / "run"
