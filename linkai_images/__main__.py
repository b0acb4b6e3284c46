"""``python -m linkai_images``: the ``linkai-images`` command line."""

import sys

from ._cli.main import main

if __name__ == "__main__":
    sys.exit(main())
