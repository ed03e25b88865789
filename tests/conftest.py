"""Shared test fixtures (the seeded RNG and the one thread come from the root conftest.py), and
`suite_text`, the one builder of the suites the tests run."""

import json

import pytest

# The tiny grid's methods: a per-observation run (rej_abc) beside two amortized fits.
TINY_METHODS = {"exact": {}, "rej_abc": {"num_accepted": 20}, "npe": {"max_epochs": 3}}


def _toml(value):
    """``value`` as a TOML value: a number, a string, a list or an inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def suite_text(
    name="tiny",
    *,
    description="a test grid",
    tasks=("normal_mean", "poisson_gamma"),
    budgets=(200,),
    seeds=(0,),
    observations=(1, 2),
    num_posterior_samples=500,
    metrics=("c2st", "mmd", "wasserstein", "moments", "nll"),
    sbc=(40, 20),
    methods=TINY_METHODS,
    top="",
    **extra,
):
    """The TOML text of a suite; by default the tiny grid (2 tasks, 3 methods, 2 observations).

    Arguments:
        description: written where not None (a suite file may leave it out).
        sbc: (num_datasets, num_posterior_samples) of the ``[sbc]`` table, or the table as a
            dict (some keys, or wrong ones); None leaves it out.
        methods: label -> its table (``method``, config, ``tasks``), in the file's order.
        top: text put first (a line the tests place before the suite's own).
        extra: further top-level fields (``timeout``, ``task_observations``), before ``[sbc]``.
    """
    fields = {"name": name, "description": description, "tasks": tasks, "budgets": budgets,
              "seeds": seeds, "observations": observations,
              "num_posterior_samples": num_posterior_samples, "metrics": metrics, **extra}  # fmt: skip
    lines = [f"{key} = {_toml(value)}" for key, value in fields.items() if value is not None]
    if sbc is not None:
        if not isinstance(sbc, dict):
            sbc = {"num_datasets": sbc[0], "num_posterior_samples": sbc[1]}
        lines += ["", "[sbc]", *(f"{key} = {_toml(value)}" for key, value in sbc.items())]
    lines.append("")
    for label, table in methods.items():
        lines.append(f"[methods.{label}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in table.items())
    return top + "\n".join(lines) + "\n"


TINY_SUITE = suite_text()


@pytest.fixture(name="suite_text", scope="session")
def _suite_text():
    """`suite_text`, the builder of the suites the tests run."""
    return suite_text


@pytest.fixture
def suite_file(tmp_path):
    """A function writing a suite (a text, or `suite_text`'s fields) to ``tmp_path``, as
    ``<name>.toml`` unless ``filename`` says otherwise; it returns the path."""

    def write(text=None, filename=None, **fields):
        text = suite_text(**fields) if text is None else text
        path = tmp_path / (filename or f"{fields.get('name', 'tiny')}.toml")
        path.write_text(text)
        return path

    return write


@pytest.fixture
def make_suite(suite_file):
    """A function loading a suite that `suite_file` writes (the tiny grid by default)."""
    from sbibench.run.suite import load_suite

    def make(text=None, filename=None, **fields):
        return load_suite(suite_file(text, filename, **fields))

    return make


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run folder of a small real grid, shared by the report and check tests."""
    from sbibench.run.runner import run_suite
    from sbibench.run.suite import load_suite

    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.toml").write_text(TINY_SUITE)
    run_suite(load_suite(folder / "tiny.toml"), folder / "run", progress=False)
    return folder / "run"


@pytest.fixture
def tiny_suite():
    """The text of a small real suite: 2 tasks, 3 methods, 2 observations."""
    return TINY_SUITE
