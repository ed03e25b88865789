"""The registry: ``"module:attribute"`` lookups, entry points added to the built-in names, and
the shipped suites."""

import importlib.metadata
import math
import pathlib

import pytest

from sbibench import registry
from sbibench.registry import (
    GROUPS,
    SUITES_DIR,
    list_suites,
    load,
    lookup,
    module_of,
    with_entry_points,
)


def test_load_imports_the_named_attribute():
    assert load("math:pi") is math.pi
    assert load("sbibench.registry:lookup", "function") is lookup


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("math.pi", "expected 'package.module:attribute' for the score function, got 'math.pi'"),
        (":pi", "expected 'package.module:attribute' for the score function, got ':pi'"),
        ("math:", "expected 'package.module:attribute' for the score function, got 'math:'"),
        (
            "no_such_module_here:f",
            r"cannot import 'no_such_module_here:f' \(score function\): No module named",
        ),
        ("math:tau_twice", r"cannot import 'math:tau_twice' \(score function\): .*tau_twice"),
    ],
)
def test_a_bad_path_is_a_value_error_naming_it(path, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        load(path, "score function")


def test_an_unknown_name_lists_the_known_ones():
    table = {"pi": "math:pi", "e": "math:e"}
    assert lookup(table, "e", "constant") is math.e
    with pytest.raises(ValueError, match=r"^unknown constant 'tau'; known: e, pi$"):
        lookup(table, "tau", "constant")
    with pytest.raises(ValueError, match=r"cannot import 'math:nope' \(constant\)"):
        lookup({"nope": "math:nope"}, "nope", "constant")


class _Entry:
    def __init__(self, name, value):
        self.name, self.value = name, value


def test_entry_points_add_names_and_a_builtin_name_wins(monkeypatch):
    asked = []

    def entry_points(group):
        asked.append(group)
        return [_Entry("theirs", "their_package:Method"), _Entry("npe", "their_package:NPE")]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    builtin = {"npe": "sbibench.methods.npe:NPE"}
    table = with_entry_points(builtin, "methods")
    assert table == {"npe": "sbibench.methods.npe:NPE", "theirs": "their_package:Method"}
    assert asked == [GROUPS["methods"]] == ["sbibench.methods"]
    assert builtin == {"npe": "sbibench.methods.npe:NPE"}  # the built-in table is not changed
    with pytest.raises(KeyError):
        with_entry_points(builtin, "estimators")


def test_without_entry_points_the_table_is_the_builtin_one():
    installed = {entry.name for entry in importlib.metadata.entry_points(group="sbibench.tasks")}
    table = with_entry_points({"a": "m:a"}, "tasks")
    assert set(table) == {"a"} | installed


def test_list_suites_names_the_seven_shipped_suites():
    assert list_suites() == [
        "frontier",
        "full",
        "ladder",
        "quick",
        "sbi-crosscheck",
        "sbibm",
        "standard",
    ]
    assert all((SUITES_DIR / f"{name}.toml").is_file() for name in list_suites())


def test_an_entry_registered_as_the_object_itself_is_returned_as_it_is():
    """A class registered at run time is its own entry; its module is its own."""
    table = {"pi": "math:pi", "path": pathlib.Path}
    assert lookup(table, "path", "class") is pathlib.Path
    assert module_of(table["pi"]) == "math" and module_of(table["path"]) == "pathlib"
