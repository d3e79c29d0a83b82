"""Label configs: the two defaults, offline validation, and where a response goes.

A :class:`Target` says which TextArea receives the model's response as an
editable prediction, and which object (``Text``, ``Paragraphs``...) shows the
prompt, under which data key.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lstrace._errors import ConfigError

Mode = Literal["prompt", "chat", "pairwise", "trace"]
MODES: tuple[str, ...] = ("prompt", "chat", "pairwise", "trace")

# The configs of LangChain's Label Studio integration, with two fixes found in a real
# browser: rows="4" makes the response editable in a multi-line box (without it Label
# Studio uses a one-line input that joins the lines of an edited response), and the chat
# view hides the "00:00:00" time stamps Paragraphs shows on every turn.
PROMPT_CONFIG = """<View>
<Style>
    .prompt-box {
        background-color: white;
        border-radius: 10px;
        box-shadow: 0px 4px 6px rgba(0, 0, 0, 0.1);
        padding: 20px;
    }
</Style>
<View className="root">
    <View className="prompt-box">
        <Text name="prompt" value="$prompt"/>
    </View>
    <TextArea name="response" toName="prompt"
              maxSubmissions="1" editable="true"
              required="true" rows="4"/>
</View>
<Header value="Rate the response:"/>
<Rating name="rating" toName="prompt"/>
</View>"""

CHAT_CONFIG = """<View>
<Style>.lst-dialogue [class*="time--"] { display: none; }</Style>
<View className="root lst-dialogue">
     <Paragraphs name="dialogue"
               value="$prompt"
               layout="dialogue"
               textKey="content"
               nameKey="role"
               granularity="sentence"/>
  <Header value="Final response:"/>
    <TextArea name="response" toName="dialogue"
              maxSubmissions="1" editable="true"
              required="true" rows="4"/>
</View>
<Header value="Rate the response:"/>
<Rating name="rating" toName="dialogue"/>
</View>"""

PAIRWISE_CONFIG = """<View>
<Header value="Prompt"/>
<Text name="prompt" value="$prompt"/>
<Header value="Which response is better? Click it."/>
<Pairwise name="preference" toName="answer_a,answer_b"
          leftChoiceValue="A" rightChoiceValue="B"/>
<View style="display: flex; gap: 1em;">
  <View style="flex: 1;">
    <Header value="Response A"/>
    <Text name="answer_a" value="$answer_a"/>
  </View>
  <View style="flex: 1;">
    <Header value="Response B"/>
    <Text name="answer_b" value="$answer_b"/>
  </View>
</View>
</View>"""

# Trace mode: one agent or chain run per task. Community tags only (no Enterprise <Chat>);
# every captured text is shown by Paragraphs or Text, which render text, never HTML.
TRACE_CONFIG = """<View>
<Style>.lst-trace [class*="time--"] { display: none; }</Style>
<Text name="summary" value="$summary"/>
<View className="lst-trace">
  <Paragraphs name="trajectory" value="$trajectory" layout="dialogue"
              nameKey="who" textKey="text"/>
</View>
<Collapse>
  <Panel value="Tools offered to the model">
    <Text name="tools_offered" value="$tools_text"/>
  </Panel>
</Collapse>
<Header value="Final answer (edit it to correct it):"/>
<TextArea name="answer" toName="trajectory" maxSubmissions="1" editable="true"
          required="true" rows="6"/>
<Header value="Rate the whole run:"/>
<Rating name="rating" toName="trajectory"/>
<Header value="Which step went wrong? (leave empty if none)"/>
<Choices name="wrong_step" toName="trajectory" value="$step_choices" choice="single"/>
</View>"""

DEFAULT_CONFIGS: Mapping[str, str] = {
    "prompt": PROMPT_CONFIG,
    "chat": CHAT_CONFIG,
    "pairwise": PAIRWISE_CONFIG,
    "trace": TRACE_CONFIG,
}

# Data keys lstrace fills on every task; a custom config may show any of them.
TASK_DATA_KEYS: frozenset[str] = frozenset(
    {
        "prompt",
        "run_id",
        "parent_run_id",
        "model",
        "tags",
        "metadata",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "latency_ms",
        "captured_at",
        "error",
        # pairwise tasks
        "model_a",
        "model_b",
        "run_id_b",
        # trace tasks
        "input",
        "summary",
        "trajectory",
        "messages",
        "tools",
        "tools_text",
        "step_choices",
        "steps",
        "tools_used",
        "incomplete",
    }
)

_VARIABLE = re.compile(r"\$([A-Za-z_][\w]*)")


@dataclass(frozen=True)
class Target:
    """Where a captured call goes in a label config."""

    from_name: str  # the TextArea
    to_name: str  # the object the TextArea points to
    value_key: str  # data key the object reads (``$prompt`` -> ``prompt``)
    object_type: str  # Text, Paragraphs, HyperText...

    def describe(self) -> str:
        return (
            f"TextArea {self.from_name!r} on {self.object_type} {self.to_name!r} "
            f"reading ${self.value_key}"
        )

    @property
    def wants_dialogue(self) -> bool:
        """True when the object renders a list of ``{role, content}`` messages."""
        return self.object_type.lower() == "paragraphs"


@dataclass(frozen=True)
class PairTarget:
    """Where a pair of responses goes: a Pairwise control over two objects."""

    name: str  # the Pairwise control
    left_key: str  # data key of the first response (``$answer_a`` -> ``answer_a``)
    right_key: str

    def describe(self) -> str:
        return f"Pairwise {self.name!r} over ${self.left_key} and ${self.right_key}"


AnyTarget = Target | PairTarget


def default_target(mode: str) -> AnyTarget:
    """The target of a mode's default config (known without parsing)."""
    if mode == "pairwise":
        return PairTarget("preference", "answer_a", "answer_b")
    if mode == "chat":
        return Target("response", "dialogue", "prompt", "Paragraphs")
    if mode == "trace":
        return Target("answer", "trajectory", "trajectory", "Paragraphs")
    return Target("response", "prompt", "prompt", "Text")


@functools.lru_cache(maxsize=64)
def target_from_xml(xml: str) -> AnyTarget:
    """Validate a custom label config offline and find where responses go.

    A ``TextArea`` pointing at an object makes a :class:`Target`; without one,
    a ``Pairwise`` control over two objects makes a :class:`PairTarget`.
    Raises :class:`ConfigError` for malformed XML, a config with neither, or
    ``$variables`` that lstrace cannot fill.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConfigError(
            f"project_config is not well-formed XML ({exc}). "
            "Pass a Label Studio labeling config such as '<View>...</View>'."
        ) from exc
    if root.tag != "View":
        raise ConfigError(f"project_config must have <View> as its root tag, not <{root.tag}>.")
    _check_with_label_interface(xml)
    objects = {el.get("name"): el for el in root.iter() if el.get("value", "").startswith("$")}
    for el in root.iter("TextArea"):
        to_name = (el.get("toName") or "").split(",")[0]
        obj = objects.get(to_name)
        if el.get("name") and obj is not None:
            return _checked(
                xml, Target(el.get("name", ""), to_name, obj.get("value", "")[1:], obj.tag)
            )
    for el in root.iter("Pairwise"):
        names = (el.get("toName") or "").split(",")
        pair = [objects[n] for n in names if n in objects]
        if len(names) == 2 and len(pair) == 2:
            keys = [o.get("value", "")[1:] for o in pair]
            return _checked(xml, PairTarget(el.get("name", ""), keys[0], keys[1]))
    raise ConfigError(
        "project_config has no <TextArea> pointing at an object with a $variable; "
        "lstrace puts the model's response in a TextArea. Add for example "
        '<TextArea name="response" toName="prompt" editable="true"/> next to '
        '<Text name="prompt" value="$prompt"/> (or, for mode="pairwise", a '
        '<Pairwise toName="answer_a,answer_b"/> over two Text objects).'
    )


def target_from_parsed(parsed: Mapping[str, Any]) -> AnyTarget | None:
    """Find the target in a project's ``parsed_label_config`` from the server."""
    for name, tag in parsed.items():
        if tag.get("type") == "TextArea" and tag.get("to_name") and tag.get("inputs"):
            first = tag["inputs"][0]
            return Target(name, tag["to_name"][0], first["value"], first["type"])
    for name, tag in parsed.items():
        if tag.get("type") == "Pairwise" and len(tag.get("inputs") or []) == 2:
            return PairTarget(name, tag["inputs"][0]["value"], tag["inputs"][1]["value"])
    return None


def _checked(xml: str, target: AnyTarget) -> AnyTarget:
    own = {target.value_key} if isinstance(target, Target) else {target.left_key, target.right_key}
    unknown = sorted(set(_VARIABLE.findall(xml)) - TASK_DATA_KEYS - own)
    if unknown:
        raise ConfigError(
            f"project_config uses data variables lstrace does not fill: "
            f"{', '.join('$' + v for v in unknown)}. Use only "
            f"{', '.join('$' + k for k in sorted(TASK_DATA_KEYS))}."
        )
    return target


def _check_with_label_interface(xml: str) -> None:
    """Run the SDK's own config parser; it knows every tag's rules."""
    # Deliberately lazy: the SDK is slow to import and only custom configs need it.
    from label_studio_sdk.label_interface.interface import LabelInterface  # noqa: PLC0415

    try:
        LabelInterface(xml)
    except Exception as exc:  # the SDK raises assorted types for bad configs
        raise ConfigError(f"project_config was rejected by Label Studio's parser: {exc}") from exc
