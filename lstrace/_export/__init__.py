"""Reading reviewed tasks back out of Label Studio, as training and evaluation data.

The data's path: ``server`` (read-side SDK calls, failures as :mod:`.errors`)
-> ``fetch`` (annotated tasks, page by page) -> ``annotations`` (one task's
annotations mapped by tag type, filtered, one picked per policy) -> ``formats``
(the sft, preference and ratings writers). ``lstrace.export`` drives it.
"""
