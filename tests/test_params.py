"""Settings classes: types, ranges and text from the command line."""

from dataclasses import dataclass

import pytest

from attrib_audit.errors import SettingError
from attrib_audit.params import Params, build, describe, merge, parse_assignments, setting, text


@dataclass(frozen=True)
class Example(Params):
    steps: int = setting(8, "steps", min=1)
    scale: float = setting(0.5, "scale", above=0)
    name: str = setting("zeros", "name", choices=("zeros", "blur", "3"))
    flag: bool = setting(True, "flag")
    size: int | None = setting(None, "size (None: the context's)", min=1)
    start: str | float = setting("zeros", "a name or a value", choices=("zeros", "blur"))

    def check(self) -> None:
        if self.steps > 100 and self.flag:
            raise SettingError("steps", "must be <= 100 with flag")


def _build(**values):
    return build(Example, values, owner="method_params.ex")


def test_text_from_the_command_line_takes_each_settings_type():
    p = _build(
        steps=text("16"),
        scale=text("2"),
        name=text("3"),
        flag=text("false"),
        size=text("None"),
        start=text("0.25"),
    )
    assert (p.steps, p.scale, p.name, p.flag, p.size, p.start) == (16, 2.0, "3", False, None, 0.25)
    assert isinstance(p.scale, float) and _build(start=text("blur")).start == "blur"
    assert _build(steps=16.0).steps == 16  # a whole float from a TOML file


@pytest.mark.parametrize(
    "values, message",
    [
        ({"stepz": 3}, r"method_params.ex.stepz is not a setting of ex; its settings: steps"),
        ({"steps": 0}, r"method_params.ex.steps must be >= 1, got 0"),
        ({"steps": 2.5}, r"method_params.ex.steps must be int, got 2.5"),
        ({"steps": True}, r"method_params.ex.steps must be int, got True"),
        ({"steps": text("1" + "0" * 400)}, r"method_params.ex.steps is too large"),
        ({"scale": 0}, r"method_params.ex.scale must be > 0, got 0"),
        ({"scale": text("1" + "0" * 400)}, r"method_params.ex.scale must be a finite number"),
        ({"scale": float("nan")}, r"method_params.ex.scale must be a finite number"),
        ({"name": text("simpson")}, r"method_params.ex.name must be one of zeros, blur, 3"),
        ({"flag": text("maybe")}, r"method_params.ex.flag must be bool, got 'maybe'"),
        ({"start": text("bl")}, r"method_params.ex.start must be one of zeros, blur"),
        ({"steps": 200}, r"method_params.ex.steps must be <= 100 with flag"),
    ],
)
def test_bad_values_name_the_setting(values, message):
    with pytest.raises(SettingError, match=message) as info:
        _build(**values)
    assert info.value.field.startswith("method_params.ex.")


def test_assignments_merge_and_describe():
    given = parse_assignments(
        ["ig.steps=16", "ifia-topk.k = 3", "ig.method=riemann_left"], flag="-"
    )
    assert given == {"ig": {"steps": "16", "method": "riemann_left"}, "ifia-topk": {"k": "3"}}
    with pytest.raises(SettingError, match=r"--method-param 'steps': use NAME.SETTING=VALUE"):
        parse_assignments(["steps"], flag="--method-param")
    assert merge({"ig": {"steps": 4, "method": "a"}}, {"ig": {"steps": 2}}) == {
        "ig": {"steps": 2, "method": "a"}
    }
    assert describe(Example)[0] == ("steps", "int", 8, "steps")
    assert Example().as_dict()["size"] is None
