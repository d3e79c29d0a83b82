"""Named label-config templates (lstrace/templates.py): valid offline, found by name.

How they render is checked in a real Label Studio by the browser tier
(tests/browser/test_rendering.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lstrace import ConfigError, ls_session, templates
from lstrace._labelconfig import DEFAULT_CONFIGS, Target, target_from_xml

EXTRA = [name for name in templates.names() if name not in DEFAULT_CONFIGS]


def test_names_list_the_mode_defaults_first_then_at_least_three_templates() -> None:
    """``names()`` starts with every mode's default config, then the extra templates."""
    names = templates.names()
    assert names[: len(DEFAULT_CONFIGS)] == tuple(DEFAULT_CONFIGS)
    assert {"response-grading", "chat-grading", "red-team-review"} <= set(EXTRA)


@pytest.mark.parametrize("mode", list(DEFAULT_CONFIGS))
def test_a_mode_name_gives_that_modes_default_config(mode: str) -> None:
    """``get("chat")`` is exactly the config ``mode="chat"`` uses."""
    assert templates.get(mode) == DEFAULT_CONFIGS[mode]


@pytest.mark.parametrize("name", EXTRA)
def test_template_is_accepted_as_project_config(name: str) -> None:
    """Each template passes the validation a scope runs at entry (XML, the SDK's parser,
    only data keys lstrace fills) and sends the response to its TextArea "response"."""
    ls_session(project_name="templates", project_config=templates.get(name))  # no raise
    target = target_from_xml(templates.get(name))
    assert isinstance(target, Target)
    assert target.from_name == "response"
    assert target.value_key == "prompt"


@pytest.mark.parametrize("name", EXTRA)
def test_template_edits_the_response_in_a_multi_line_box(name: str) -> None:
    """The response TextArea sets ``rows``: without it Label Studio edits in a one-line
    input that drops the response's line breaks (shown by the browser tier)."""
    root = ET.fromstring(templates.get(name))
    [response] = [el for el in root.iter("TextArea") if el.get("name") == "response"]
    assert int(response.get("rows", "0")) >= 2
    assert response.get("editable") == "true"


@pytest.mark.parametrize("name", EXTRA)
def test_template_shows_model_and_tags_and_keeps_details_collapsed(name: str) -> None:
    """Annotators see the model and tags above the task; run ids, tokens, latency and
    metadata sit in a collapsed panel."""
    root = ET.fromstring(templates.get(name))
    headers = [el.get("value", "") for el in root.iter("Header")]
    assert "Model: $model · Tags: $tags" in headers
    [panel] = [el for collapse in root.iter("Collapse") for el in collapse.iter("Panel")]
    details = " ".join(el.get("value", "") for el in panel.iter("Header"))
    for key in ("$run_id", "$total_tokens", "$latency_ms", "$metadata"):
        assert key in details


def test_unknown_name_raises_config_error_listing_known_names() -> None:
    """A typo fails loudly with the names that exist."""
    with pytest.raises(ConfigError, match=r"'chat-grade'.*chat-grading.*red-team-review"):
        templates.get("chat-grade")
