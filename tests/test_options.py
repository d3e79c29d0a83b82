"""Scope options: checked when given, resolved at scope entry (lstrace/_options.py). No HTTP.

Resolution order for each option: the scope's own argument, the enclosing
scope's, the environment, the default. The project (id, name, config, mode)
is one unit; tags and metadata merge from outer to inner.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import pytest

from lstrace import CaptureOptions, ConfigError, TraceOptions
from lstrace._labelconfig import CHAT_CONFIG, PROMPT_CONFIG
from lstrace._options import DEFAULT_URL, OPTIONS, Destination, Options, make_args, resolve

NOW = dt.datetime(2026, 3, 4, 5, 6, 7)
CUSTOM = '<View><Text name="q" value="$question"/><TextArea name="a" toName="q"/></View>'


def test_default_project_is_named_after_the_day_with_the_prompt_config() -> None:
    """With no project option, tasks go to "LangChain-YYYY-MM-DD" with the prompt config."""
    dest = resolve(make_args(), None, now=NOW).destination
    assert dest.project_title == "LangChain-2026-03-04"
    assert dest.project_id is None
    assert (dest.mode, dest.label_config) == ("prompt", PROMPT_CONFIG)


def test_project_name_is_a_strftime_pattern() -> None:
    """project_name is formatted with the entry time, so one project a week/day is easy."""
    dest = resolve(make_args(project_name="Eval %Y-W%W %H:%M"), None, now=NOW).destination
    assert dest.project_title == "Eval 2026-W09 05:06"


def test_chat_mode_uses_the_chat_config() -> None:
    """mode="chat" creates projects with the Paragraphs dialogue config."""
    dest = resolve(make_args(mode="chat", project_name="C"), None, now=NOW).destination
    assert (dest.mode, dest.label_config) == ("chat", CHAT_CONFIG)


def test_project_id_wins_over_project_name() -> None:
    """Given both, the id decides; no title is looked up."""
    dest = resolve(make_args(project_id="42", project_name="Ignored"), None).destination
    assert (dest.project_id, dest.project_title) == (42, None)


def test_environment_fills_url_key_and_project_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and LABEL_STUDIO_PROJECT_ID are the defaults."""
    monkeypatch.setenv("LABEL_STUDIO_URL", "https://ls.example.com/")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-key")
    monkeypatch.setenv("LABEL_STUDIO_PROJECT_ID", "7")
    options = resolve(make_args(), None)
    assert options.destination.url == "https://ls.example.com"
    assert options.api_key == "env-key"
    assert options.destination.project_id == 7
    # an explicit name overrides the environment's project id
    named = resolve(make_args(project_name="Mine"), None, now=NOW).destination
    assert (named.project_id, named.project_title) == (None, "Mine")


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """url=, api_key= and project_id= override their environment variables."""
    monkeypatch.setenv("LABEL_STUDIO_PROJECT_ID", "7")
    options = resolve(make_args(url="http://other:9000/", api_key="arg-key", project_id=8), None)
    assert options.destination.url == "http://other:9000"
    assert options.api_key == "arg-key"
    assert options.destination.project_id == 8


def test_default_url_is_localhost_8080(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without LABEL_STUDIO_URL the server is http://localhost:8080, like the original handler."""
    monkeypatch.delenv("LABEL_STUDIO_URL")
    assert DEFAULT_URL == "http://localhost:8080"
    assert resolve(make_args(), None).destination.url == DEFAULT_URL


def test_missing_api_key_resolves_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere (or an empty one) is not a configuration mistake: it resolves to None,
    and the sender holds the calls until a key is given."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    assert resolve(make_args(), None).api_key is None
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "")
    assert resolve(make_args(), None).api_key is None
    assert resolve(make_args(api_key="k"), None).api_key == "k"


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"mode": "dialogue"}, "mode must be one of 'prompt', 'chat'"),
        ({"project_id": "abc"}, "project_id must be a whole number"),
        ({"project_id": 0}, "project_id must be a positive project id"),
        ({"project_id": True}, "project_id must be a positive project id"),
        ({"project_config": "<View>"}, "not well-formed XML"),
        ({"project_config": "<View><Text name='p' value='$prompt'/></View>"}, "no <TextArea>"),
        ({"project_name": "  "}, "project_name must be a non-empty string"),
        ({"project_name": "Eval \ud800"}, "project_name must be valid text: a lone surrogate"),
        ({"project_name": "Eval\x00"}, "project_name must be valid text: a NUL"),
        ({"url": "localhost:8080"}, "url must start with http:// or https://"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_fix(
    kwargs: dict[str, object], fix: str
) -> None:
    """Each malformed argument is refused before anything runs, with the fix in the message."""
    with pytest.raises(ConfigError, match=fix.replace("(", r"\(")):
        make_args(**kwargs)


def test_bad_project_id_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A non-numeric LABEL_STUDIO_PROJECT_ID is reported under its own name."""
    monkeypatch.setenv("LABEL_STUDIO_PROJECT_ID", "my-project")
    with pytest.raises(ConfigError, match="LABEL_STUDIO_PROJECT_ID must be a whole number"):
        resolve(make_args(), None)


def test_titles_longer_than_label_studio_allows_are_refused() -> None:
    """Label Studio titles hold 50 characters; a longer (formatted) title fails at entry."""
    with pytest.raises(ConfigError, match="at most 50 characters"):
        resolve(make_args(project_name="x" * 45 + " %Y-%m-%d"), None, now=NOW)


def test_inner_scope_naming_no_project_inherits_the_outer_project() -> None:
    """A scope with only tags/metadata keeps the enclosing scope's project, url and key."""
    outer = resolve(
        make_args(project_name="Outer", mode="chat", api_key="k1", url="http://a:1"), None, now=NOW
    )
    inner = resolve(make_args(tags=["inner"]), outer)
    assert inner.destination == outer.destination
    assert inner.api_key == "k1"


def test_inner_scope_naming_a_project_starts_it_from_scratch() -> None:
    """Naming a project in an inner scope does not inherit the outer mode or config."""
    outer = resolve(make_args(project_name="Outer", mode="chat"), None, now=NOW)
    inner = resolve(make_args(project_name="Inner"), outer, now=NOW).destination
    assert (inner.project_title, inner.mode, inner.label_config) == (
        "Inner",
        "prompt",
        PROMPT_CONFIG,
    )
    with_config = resolve(make_args(project_config=CUSTOM), outer, now=NOW).destination
    assert with_config.label_config == CUSTOM
    assert with_config.project_title == "LangChain-2026-03-04"


def test_tags_and_metadata_merge_from_outer_to_inner() -> None:
    """Tags accumulate without duplicates; on a metadata key clash the inner value wins."""
    outer = resolve(make_args(tags=["a", "b"], metadata={"user": "ana", "run": 1}), None, now=NOW)
    inner = resolve(make_args(tags=["b", "c"], metadata={"run": 2}), outer)
    assert inner.tags == ("a", "b", "c")
    assert inner.metadata == {"user": "ana", "run": 2}
    assert outer.metadata == {"user": "ana", "run": 1}  # the outer scope is untouched


def test_unknown_option_message_lists_each_option_once() -> None:
    """A misspelt option names every valid option exactly once, sorted."""
    with pytest.raises(ConfigError) as raised:
        make_args(zzz_unknown=1)
    listed = re.findall(r"'(\w+)'", str(raised.value).split("options are", 1)[1])
    assert listed == sorted(set(listed))
    assert set(listed) == set(TraceOptions.__annotations__)


def test_the_option_table_and_the_typed_signatures_agree() -> None:
    """Every option of the table is in TraceOptions and back; CaptureOptions is the table's
    capture subset; the resolved Options carries every inherited or merged option."""
    assert set(OPTIONS) == set(TraceOptions.__annotations__)
    assert {n for n, s in OPTIONS.items() if s.capture} == set(CaptureOptions.__annotations__)
    carried = {n for n, s in OPTIONS.items() if s.inherit != "project"}
    assert carried == {f.name for f in dataclasses.fields(Options)} - {"destination", "enabled"}


def test_environment_defaults_come_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each option with a variable in the table takes its default from it, checked under the
    variable's name."""
    with_env = {n: s.env for n, s in OPTIONS.items() if s.env}
    assert with_env == {
        "project_id": "LABEL_STUDIO_PROJECT_ID",
        "url": "LABEL_STUDIO_URL",
        "api_key": "LABEL_STUDIO_API_KEY",
        "sample_rate": "LSTRACE_SAMPLE_RATE",
        "sample_seed": "LSTRACE_SAMPLE_SEED",
        "capture_errors": "LSTRACE_CAPTURE_ERRORS",
        "max_field_chars": "LSTRACE_MAX_FIELD_CHARS",
    }
    monkeypatch.setenv("LSTRACE_MAX_FIELD_CHARS", "12")
    monkeypatch.setenv("LSTRACE_SAMPLE_RATE", "0.25")
    options = resolve(make_args(), None)
    assert (options.max_field_chars, options.sample_rate) == (12, 0.25)
    monkeypatch.setenv("LABEL_STUDIO_URL", "localhost:8080")
    with pytest.raises(ConfigError, match="LABEL_STUDIO_URL must start with http"):
        resolve(make_args(), None)


def test_a_destination_spec_is_versioned_and_reads_back() -> None:
    """The spool stores a destination as a versioned spec; it reads back equal, with the same
    key, and so does the unversioned layout spools hold from before the version existed."""
    dest = resolve(make_args(project_name="Spec", mode="chat"), None, now=NOW).destination
    spec = dest.to_spec()
    assert spec["v"] == 1
    again = Destination.from_spec(json.loads(json.dumps(spec)))
    assert (again, again.key) == (dest, dest.key)
    unversioned = {k: v for k, v in spec.items() if k != "v"}
    assert Destination.from_spec(unversioned) == dest
    assert Destination.from_spec({**spec, "added_later": 1}) == dest
    with pytest.raises(ValueError, match="newer lstrace"):
        Destination.from_spec({**spec, "v": 99})
