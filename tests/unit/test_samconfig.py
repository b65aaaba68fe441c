"""samconfig.toml, committed: a guided default and one section per stage, each consistent with template.yaml and
with the names the `paybridge` command derives from the stage (stack `paybridge-<stage>`, `Stage=<stage>`)."""

from __future__ import annotations

import shlex
import tomllib

import pytest

from devstack.template import load_template
from tests.conftest import ROOT

CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
STAGES = {name: ("dev" if name == "default" else name) for name in CONFIG if name != "version"}


def overrides(section: str) -> dict[str, str]:
    pairs = shlex.split(CONFIG[section]["deploy"]["parameters"]["parameter_overrides"])
    return dict(pair.split("=", 1) for pair in pairs)


def test_there_is_a_guided_default_and_named_stages() -> None:
    assert {"default", "staging", "prod"} <= set(STAGES)
    assert CONFIG["default"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert CONFIG["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


@pytest.mark.parametrize("section", sorted(STAGES))
def test_each_stage_names_its_stack_and_stage_and_only_template_parameters(section: str) -> None:
    stage = STAGES[section]
    deploy = CONFIG[section]["deploy"]["parameters"]
    assert deploy["stack_name"] == f"paybridge-{stage}"  # what `paybridge webhooks register` reads ApiUrl from
    assert deploy["capabilities"] == "CAPABILITY_IAM" and deploy["resolve_s3"] is True and deploy["region"]
    given = overrides(section)
    assert given["Stage"] == stage
    parameters = load_template().raw["Parameters"]
    assert set(given) <= set(parameters), set(given) - set(parameters)
    for name, value in given.items():
        allowed = parameters[name].get("AllowedValues")
        assert allowed is None or int(value) in allowed or value in allowed, (name, value)
