"""``python -m devserve``: the same as the ``devserve`` command."""

from devserve.cli import main

main()
