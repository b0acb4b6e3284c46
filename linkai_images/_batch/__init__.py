"""Batches: many requests at a bound, settled one by one, resumable.

Owns: the engine behind ``generate_many``/``as_completed`` (``engine``), the
JSON Lines checkpoint journal (``checkpoint``), progress events and bars
(``progress``), prices per image (``prices``) and the plan of a batch before
it is sent (``plan``).

May import: ``_exceptions``, ``_config``, ``_models``, ``_retry``,
``_outputs``. Never ``_client``: the engine drives any object with the
``BatchClient`` protocol it declares, so the client imports the batch layer
and never the other way round.
"""
