"""``ServiceConfig``'s numeric limits come from one table (``LIMITS``): every bound is enforced at both ends,
with pydantic's usual errors, and ``facetrace serve`` reports every bad limit of a command line at once."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from facetrace.cli import main
from facetrace.cli.output import EXIT_BAD_INPUT
from facetrace.service.config import LIMITS, ServiceConfig


def _number(value: float) -> str:
    """A bound as pydantic writes it in a message (5.0 → "5")."""
    return str(int(value)) if float(value).is_integer() else str(value)


def test_the_table_holds_every_numeric_setting_and_only_those() -> None:
    numeric = {
        name for name, f in ServiceConfig.model_fields.items() if f.annotation in ("int", "float", int, float)
    }
    assert set(LIMITS) == numeric
    for name, limit in LIMITS.items():
        assert ServiceConfig.model_fields[name].description == limit.description


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_each_limit_is_enforced_at_both_ends(name: str) -> None:
    limit = LIMITS[name]
    step = 1 if ServiceConfig.model_fields[name].annotation in ("int", int) else 0.25
    default = getattr(ServiceConfig(), name)
    assert limit.low < default if limit.above else limit.low <= default
    assert default <= limit.high
    lowest = limit.low + step if limit.above else limit.low
    for fine in (lowest, limit.high):
        assert getattr(ServiceConfig(**{name: fine}), name) == fine
    for bad, kind, words in (
        (limit.low if limit.above else limit.low - step, "greater_than" if limit.above else "greater_than_equal",
         f"greater than {_number(limit.low)}" if limit.above else f"greater than or equal to {_number(limit.low)}"),
        (limit.high + step, "less_than_equal", f"less than or equal to {_number(limit.high)}"),
    ):  # fmt: skip
        with pytest.raises(ValidationError) as raised:
            ServiceConfig(**{name: bad})
        (error,) = raised.value.errors()
        assert (error["loc"], error["type"], error["msg"]) == ((name,), kind, f"Input should be {words}")


def test_serve_names_every_bad_limit_before_opening_anything(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--max-body-bytes", "10", "--burst", "0", "--rate", "0", "--port", "8089", "--json"])
    assert code == EXIT_BAD_INPUT
    message = json.loads(capsys.readouterr().err)["error"]["message"]
    assert message == (
        "max_body_bytes: Input should be greater than or equal to 1024; rate: Input should be greater than 0; "
        "burst: Input should be greater than or equal to 1"
    )
