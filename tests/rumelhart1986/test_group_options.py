"""The spec options input_groups / group_hidden: documented, validated before anything runs."""

from __future__ import annotations

import pytest

from service.spec import DEFAULTS, PARAMETERS, SpecError, parse_spec


def _parse(dataset: str = "family_trees", **params: object):
    return parse_spec({"dataset": dataset, "parameters": params})


def test_documented_with_null_defaults() -> None:
    for name in ("input_groups", "group_hidden"):
        assert DEFAULTS[name] is None
        assert "input" in PARAMETERS[name].description
        assert not PARAMETERS[name].sweepable


def test_valid_groups_reach_the_config() -> None:
    (config,) = _parse(hidden=[[12, 12, 6]], input_groups=[24, 12], group_hidden=[6, 6]).configs()
    assert config["input_groups"] == [24, 12] and config["group_hidden"] == [6, 6]


@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"input_groups": [24, 12]}, "parameters.group_hidden", "go together"),
        ({"group_hidden": [6, 6], "hidden": 12}, "parameters.input_groups", "go together"),
        (
            {"input_groups": [24, 12], "group_hidden": [12], "hidden": 12},
            "parameters.group_hidden",
            "one block per input group",
        ),
        (
            {"input_groups": [20, 12], "group_hidden": [6, 6], "hidden": 12},
            "parameters.input_groups",
            "add up to 32, but family_trees has 36 inputs",
        ),
        (
            {"input_groups": [24, 12], "group_hidden": [6, 6], "hidden": [12, 10]},
            "parameters.group_hidden",
            "first hidden layer is 10",
        ),
        (
            {"input_groups": [24, 12], "group_hidden": [6, 6], "hidden": [[]]},
            "parameters.group_hidden",
            "no hidden layer",
        ),
        ({"input_groups": [], "group_hidden": [6]}, "parameters.input_groups", "non-empty"),
        (
            {"input_groups": [24, 0], "group_hidden": [6, 6]},
            "parameters.input_groups[1]",
            "integer in [1, 100,000]",
        ),
        ({"group_hidden": {"values": [[6, 6]]}}, "parameters.group_hidden", "cannot be swept"),
    ],
)
def test_invalid_groups_name_the_field(params: dict, field: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        _parse(**params)
    assert err.value.field == field
    assert message in err.value.message


def test_width_is_checked_for_generated_datasets_only(tmp_path) -> None:
    with pytest.raises(SpecError, match="symmetry:6 has 6 inputs"):
        _parse("symmetry:6", input_groups=[3, 2], group_hidden=[1, 1], hidden=2)
    (config,) = _parse("symmetry:6", input_groups=[3, 3], group_hidden=[1, 1], hidden=2).configs()
    assert config["input_groups"] == [3, 3]
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,y\n0,1,0,1\n")
    # a file is read when the spec is checked (issue 18), so its width is checked then too
    with pytest.raises(SpecError, match="has 3 inputs"):
        parse_spec(
            {
                "dataset": f"csv:{data}",
                "parameters": {"input_groups": [5, 5], "group_hidden": [1, 1], "hidden": 2},
            }
        )
