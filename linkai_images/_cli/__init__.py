"""The ``linkai-images`` command line: the top layer, which nothing else imports.

Owns: the argument parser and dispatch (``main``), one module per command
(``generate``, ``batch``, ``models``, ``demo``), reading batch files
(``batch_file``) and the shared runner that saves results as they land and
prints the summary (``run``).

May import anything in ``linkai_images``, including ``linkai_images.testing``
(the demo serves the fake).
"""
