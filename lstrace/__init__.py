"""lstrace: send every LangChain LLM call to Label Studio for review, correction and rating.

Three ways in, one behaviour::

    lstrace.enable(project_name="Support bot", mode="chat")   # whole process

    @ls_track(project_name="Jokes")                           # one function
    def tell_joke(topic): ...

    with ls_session(project_name="Eval %Y-%m-%d", tags=["eval"]):   # one block
        chain.invoke(...)

Every LLM or chat-model call inside becomes a Label Studio task, delivered in
the background, in batches, through a durable spool.
"""

from lstrace import templates
from lstrace._capture.community_handler import (
    LabelStudioCallbackHandler,
    LabelStudioMode,
    get_default_label_configs,
)
from lstrace._capture.scope import with_scope
from lstrace._capture.track import ls_session, ls_track
from lstrace._delivery.stats import FlushResult, Stats
from lstrace._errors import ConfigError, LstraceError
from lstrace._options import CallInfo, CaptureOptions, TraceOptions
from lstrace._process import configure, disable, enable, flush, stats, sync
from lstrace.export import ExportError, ExportResult, export_project

__version__ = "0.1.0"

__all__ = [
    "CallInfo",
    "CaptureOptions",
    "ConfigError",
    "ExportError",
    "ExportResult",
    "FlushResult",
    "LabelStudioCallbackHandler",
    "LabelStudioMode",
    "LstraceError",
    "Stats",
    "TraceOptions",
    "__version__",
    "configure",
    "disable",
    "enable",
    "export_project",
    "flush",
    "get_default_label_configs",
    "ls_session",
    "ls_track",
    "stats",
    "sync",
    "templates",
    "with_scope",
]
