"""samconfig.toml: the environments deploy stacks of their own, with parameters the template accepts."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest

from devtools.template_resources import load_template

CONFIG = tomllib.loads((Path(__file__).parents[2] / "samconfig.toml").read_text())
PARAMETERS = load_template()["Parameters"]


def test_each_environment_deploys_a_stack_of_its_own() -> None:
    names = {env: CONFIG[env]["global"]["parameters"]["stack_name"] for env in ("default", "dev", "prod")}
    assert len(set(names.values())) == 3, names


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_overrides_name_template_parameters_with_values_it_accepts(env: str) -> None:
    deploy = CONFIG[env]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    for pair in shlex.split(deploy["parameter_overrides"]):
        name, value = pair.split("=", 1)
        spec = PARAMETERS[name]
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], pair
        if spec["Type"] == "Number":
            assert float(spec.get("MinValue", "-inf")) <= float(value) <= float(spec.get("MaxValue", "inf")), pair
