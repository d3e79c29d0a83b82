"""Option checking (lstrace/_options.py): bad values fail at scope entry with a message
naming the fix; environment variables give the defaults."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sample_rate": -0.1}, "sample_rate must be from 0.0 to 1.0"),
        ({"sample_rate": 1.5}, "sample_rate must be from 0.0 to 1.0"),
        ({"sample_rate": "often"}, "sample_rate must be a number"),
        ({"mask": "not callable"}, "mask must be callable"),
        ({"filter": 3}, "filter must be callable"),
        ({"before_send": {}}, "before_send must be callable"),
        ({"max_field_chars": 0}, "max_field_chars must be a positive whole number"),
        ({"capture_errors": "maybe"}, "capture_errors must be true or false"),
        ({"tags": "one-string"}, "tags must be a list of strings"),
        ({"metadata": ["a"]}, "metadata must be a mapping"),
        ({"sampel_rate": 0.5}, "did you mean 'sample_rate'"),
    ],
)
@pytest.mark.parametrize("entry", ["ls_session", "ls_track", "enable", "handler"])
def test_bad_option_values_fail_at_scope_entry(
    entry: str, options: dict[str, Any], message: str
) -> None:
    """Every entry point rejects the same bad values with the same clear ConfigError."""
    with pytest.raises(lstrace.ConfigError, match=message):
        if entry == "ls_session":
            lstrace.ls_session(**options)
        elif entry == "ls_track":
            lstrace.ls_track(**options)(lambda: None)
        elif entry == "enable":
            lstrace.enable(**options)
        else:
            lstrace.LabelStudioCallbackHandler(**options)


def test_config_error_is_a_value_error() -> None:
    """ConfigError is a ValueError, so existing ``except ValueError`` code keeps working."""
    with pytest.raises(ValueError):
        lstrace.ls_session(sample_rate=2)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LSTRACE_SAMPLE_RATE", "lots", "LSTRACE_SAMPLE_RATE must be a number"),
        ("LSTRACE_MAX_FIELD_CHARS", "-5", "LSTRACE_MAX_FIELD_CHARS must be a positive"),
        ("LSTRACE_CAPTURE_ERRORS", "perhaps", "LSTRACE_CAPTURE_ERRORS must be true or false"),
        ("LSTRACE_ENABLED", "nah", "LSTRACE_ENABLED must be true or false"),
    ],
)
def test_bad_environment_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """A malformed LSTRACE_* variable fails at scope entry and names the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(lstrace.ConfigError, match=message), lstrace.ls_session():
        pass


def test_lstrace_enabled_false_captures_nothing(
    lstrace_state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LSTRACE_ENABLED=false turns capture off everywhere without code changes."""
    monkeypatch.setenv("LSTRACE_ENABLED", "false")
    llm = FakeListLLM(responses=["x"])
    lstrace.enable()
    with lstrace.ls_session():
        llm.invoke("not captured")
    lstrace.LabelStudioCallbackHandler()
    llm.invoke("nor this", config={"callbacks": [lstrace.LabelStudioCallbackHandler()]})
    assert lstrace.flush(0.5).pending == 0
    assert lstrace.stats().captured == 0
