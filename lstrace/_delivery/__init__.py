"""Delivery: from a captured call to a confirmed Label Studio task, on background threads.

The path of a call: ``worker`` (the hand-off queue, the spooler and sender
threads, flush and exit) -> ``spool`` (the durable SQLite file) -> ``sender``
(batches per destination, the retry policy, exactly once) -> ``task`` (the
task for a label config) and ``projects`` (which project, created if missing)
-> ``lstrace._client`` (the only module that talks HTTP). ``stats`` holds the counters.
"""
