"""Environment variables: one table, one reader (seis_assets/environment.py)."""

import pathlib
import re

import pytest

from seis_assets.environment import VARIABLES, env

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "seis_assets"
README = PACKAGE.parent / "README.md"


def _sources():
    return {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_reads_only_registered_names_and_treats_empty_as_unset():
    assert env("SEIS_K", {"SEIS_K": "auto"}) == "auto"
    assert env("SEIS_K", {"SEIS_K": ""}) is None
    assert env("SEIS_K", {}) is None
    with pytest.raises(KeyError, match="SEIS_NOT_A_SETTING"):
        env("SEIS_NOT_A_SETTING", {"SEIS_NOT_A_SETTING": "1"})


def test_no_module_but_environment_reads_the_environment():
    readers = {
        name for name, text in _sources().items()
        if re.search(r"os\.environ|os\.getenv|getenv\(", text) and name != "environment.py"
    }
    # demo.py points DAGSTER_HOME at a temporary folder when it is unset: Dagster's variable, not a setting
    assert readers <= {"demo.py"}, f"read the environment through seis_assets.environment.env: {sorted(readers)}"
    assert "SEIS_" not in "".join(
        line for line in _sources()["demo.py"].splitlines() if re.search(r"os\.environ|getenv", line)
    )


def test_every_variable_named_in_the_package_is_registered():
    named = set()
    for text in _sources().values():
        named |= set(re.findall(r"\bSEIS_[A-Z0-9_]*[A-Z0-9]\b", text))
    assert named - set(VARIABLES) == set(), "register these in seis_assets.environment.VARIABLES"


def test_readme_lists_every_variable():
    text = README.read_text()
    missing = [name for name in VARIABLES if f"`{name}`" not in text]
    assert missing == []


def test_each_resource_variable_names_a_field_of_that_resource():
    from seis_assets.definitions import build_resources

    resources = build_resources()
    for variable in VARIABLES.values():
        owner, _, field = variable.sets.partition(".")
        if field:
            assert field in type(resources[owner]).model_fields, variable
