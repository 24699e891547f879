"""`facetrace audit` against hostile stored text (issue 9, item 9): a purpose is data, never markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrace.audit import MAX_PURPOSE, Caller
from facetrace.cli import main
from facetrace.errors import InvalidParameterError


@pytest.mark.parametrize("purpose", ["case-7 [/]", "[black on black]hidden[/]", "trailing\\", "[link=x]y"])
def test_audit_list_prints_markup_in_a_purpose_as_itself(
    capsys: pytest.CaptureFixture[str], home: Path, purpose: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["collections", "create", "people", "--purpose", purpose, "--json"]) == 0
    capsys.readouterr()
    assert main(["audit", "list"]) == 0  # a table: this crashed on "[/]"
    out = capsys.readouterr().out
    assert purpose in out
    assert main(["audit", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Records"][-1]["Purpose"] == purpose


def test_audit_list_keeps_markup_visible(
    capsys: pytest.CaptureFixture[str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    main(["collections", "create", "people", "--purpose", "[black on black]hidden", "--json"])
    capsys.readouterr()
    main(["audit", "list"])
    assert "[black on black]" in capsys.readouterr().out  # printed, not applied


@pytest.mark.parametrize("purpose", ["line\nbreak", "esc\x1b[2J", "tab\there", "x" * (MAX_PURPOSE + 1)])
def test_a_purpose_must_be_printable_and_bounded(
    capsys: pytest.CaptureFixture[str], home: Path, purpose: str
) -> None:
    assert main(["collections", "create", "people", "--purpose", purpose, "--json"]) == 1
    assert json.loads(capsys.readouterr().err)["error"]["type"] == "InvalidParameterError"
    with pytest.raises(InvalidParameterError):
        Caller("k", purpose)
    assert main(["audit", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Records"] == []  # nothing was done
