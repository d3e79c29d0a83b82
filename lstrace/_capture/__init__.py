"""Capture: from an entry point to a captured call, on the application's own thread.

The path of a call: ``track`` (``@ls_track``, ``ls_session``) and ``scope``
(the active scope, LangChain's configure hook) -> ``handler`` (LangChain
callbacks; ``community_handler`` is the drop-in) -> ``record`` (the captured
call, turned into plain content by ``messages``) -> ``shaping`` (truncate,
filter, mask, before_send) -> :mod:`lstrace._delivery`. ``sampling`` keeps or
drops whole traces.
"""
