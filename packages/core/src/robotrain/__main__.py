"""``python -m robotrain``: the same as the ``robotrain`` console script."""

from robotrain.cli import main

main()
