"""Inputs: reference images and the request body, from user values to bytes to send.

Owns: what ``images=`` accepts and the checks made before anything is sent
(``images``), the blocking reads and encodes of local data run in worker
threads (``local``), base64 in slices that never hold the GIL for long
(``b64``), image types from magic numbers (``sniff``), each client's encoded
images shared by its requests (``cache``), and the JSON body of a generation
request as shared pieces (``body``).

May import: ``_exceptions``, ``_catalog``, ``_models``. Never the HTTP layer,
the client, batches or the command line.
"""
