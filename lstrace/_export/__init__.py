"""Reading reviewed tasks back out of Label Studio, as training and evaluation data.

The data's path: ``server`` (the reads, over lstrace's one client, failures as
``ExportError``) -> ``read`` (which way: ``snapshot``, Label Studio's export
snapshots parsed as a stream, else ``fetch``, page by page) -> ``annotations``
(one task's annotations mapped by tag type, filtered, one picked per policy) ->
``sink`` (one task per run id) -> ``formats`` (the sft, preference and ratings
writers) -> ``output`` (a file replaced atomically, or written through).
``incremental`` and ``state`` are ``--since last``: the tasks read are kept
per output, so the next run reads only what changed. ``lstrace.export`` drives
it; ``spoolview`` is the spool as ``lstrace status`` shows it.
"""
