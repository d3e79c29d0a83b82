"""Label configs: defaults, offline validation, where the response goes (lstrace/_labelconfig.py).

No HTTP: custom configs are validated with the SDK's LabelInterface and
ElementTree, before any server is asked.
"""

from __future__ import annotations

import pytest

from lstrace import ConfigError, LabelStudioMode, get_default_label_configs
from lstrace._labelconfig import (
    CHAT_CONFIG,
    PROMPT_CONFIG,
    Target,
    default_target,
    target_from_parsed,
    target_from_xml,
)

# The custom config of the langchain-community handler's documentation.
SEED_CUSTOM = """
<View>
<Text name="prompt" value="$prompt"/>
<TextArea name="response" toName="prompt"/>
<TextArea name="user_feedback" toName="prompt"/>
<Rating name="rating" toName="prompt"/>
<Choices name="sentiment" toName="prompt">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
</Choices>
</View>
"""


@pytest.mark.parametrize("mode", ["prompt", "chat"])
def test_default_target_is_what_parsing_the_default_config_finds(mode: str) -> None:
    """The shortcut target of each mode agrees with parsing that mode's default config."""
    config = PROMPT_CONFIG if mode == "prompt" else CHAT_CONFIG
    assert target_from_xml(config) == default_target(mode)


def test_prompt_and_chat_defaults_show_text_and_dialogue() -> None:
    """Prompt mode puts the prompt in a Text tag; chat mode renders Paragraphs as a dialogue."""
    assert default_target("prompt") == Target("response", "prompt", "prompt", "Text")
    chat = default_target("chat")
    assert isinstance(chat, Target)
    assert chat == Target("response", "dialogue", "prompt", "Paragraphs")
    prompt = default_target("prompt")
    assert isinstance(prompt, Target)
    assert chat.wants_dialogue and not prompt.wants_dialogue
    assert 'nameKey="role"' in CHAT_CONFIG and 'textKey="content"' in CHAT_CONFIG


def test_default_configs_are_the_community_handlers() -> None:
    """get_default_label_configs answers like langchain-community's: (config, mode member)."""
    assert get_default_label_configs("prompt") == (PROMPT_CONFIG, LabelStudioMode.PROMPT)
    assert get_default_label_configs(LabelStudioMode.CHAT) == (CHAT_CONFIG, LabelStudioMode.CHAT)
    with pytest.raises(ValueError, match="Mode bogus is not supported"):
        get_default_label_configs("bogus")


def test_custom_config_with_two_textareas_targets_the_first_usable_one() -> None:
    """The documented custom config sends the response to its first TextArea, 'response'."""
    assert target_from_xml(SEED_CUSTOM) == Target("response", "prompt", "prompt", "Text")


def test_custom_config_may_read_the_prompt_under_another_key() -> None:
    """A config whose object reads $question gets the prompt under data.question."""
    xml = (
        '<View><Text name="q" value="$question"/>'
        '<TextArea name="answer" toName="q" editable="true"/></View>'
    )
    assert target_from_xml(xml) == Target("answer", "q", "question", "Text")


def test_custom_config_may_show_lstrace_data_keys() -> None:
    """Configs may display any key lstrace fills on every task (model, tokens...)."""
    xml = (
        '<View><Text name="p" value="$prompt"/><Text name="m" value="$model"/>'
        '<Text name="t" value="$total_tokens"/><TextArea name="r" toName="p"/></View>'
    )
    target = target_from_xml(xml)
    assert isinstance(target, Target) and target.from_name == "r"


@pytest.mark.parametrize(
    ("xml", "fix"),
    [
        ("<View><Text name='p' value='$prompt'>", "not well-formed XML"),
        ("<Text name='p' value='$prompt'/>", "must have <View> as its root tag"),
        (
            "<View><Text name='p' value='$prompt'/><Rating name='r' toName='p'/></View>",
            '<TextArea name="response" toName="prompt"',
        ),
        (
            "<View><Text name='p' value='$prompt'/><TextArea name='r' toName='nothing'/></View>",
            "no <TextArea> pointing at an object",
        ),
        (
            "<View><Text name='p' value='$prompt'/><Text name='c' value='$context'/>"
            "<TextArea name='r' toName='p'/></View>",
            "does not fill: $context",
        ),
    ],
    ids=["malformed", "wrong-root", "no-textarea", "textarea-to-nothing", "unknown-variable"],
)
def test_unusable_configs_are_refused_offline_with_the_fix(xml: str, fix: str) -> None:
    """Each unusable config raises ConfigError (a ValueError) whose message says what to fix."""
    with pytest.raises(ConfigError, match=fix.replace("$", r"\$").replace("(", r"\(")) as info:
        target_from_xml(xml)
    assert isinstance(info.value, ValueError)


def test_target_from_the_servers_parsed_config() -> None:
    """The server's parsed_label_config (as Label Studio 1.23 returns it) yields the target."""
    parsed = {
        "rating": {
            "type": "Rating",
            "to_name": ["dialogue"],
            "inputs": [{"type": "Paragraphs", "value": "prompt"}],
        },
        "response": {
            "type": "TextArea",
            "to_name": ["dialogue"],
            "inputs": [{"type": "Paragraphs", "valueType": None, "value": "prompt"}],
            "labels": [],
        },
    }
    assert target_from_parsed(parsed) == default_target("chat")
    assert target_from_parsed({"rating": parsed["rating"]}) is None
