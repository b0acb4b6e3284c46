"""Outputs: what happens to generated images once the API has answered.

Owns: reading and saving images from the CDN or from inline base64, atomically
and without the API key (``download``); provenance as PNG text chunks
(``pngtext``) and pixel sizes from headers (``dimensions``); the
``metadata.jsonl`` manifest of an output directory (``manifest``) and its
``index.html`` gallery (``gallery``); what a batch writes into its PNGs
(``provenance``); ``save_results``, which puts them together (``results``).

May import: ``_exceptions``, ``_config``, ``_models``, ``_retry``, ``_http``.
Never batches, the client or the command line.
"""
