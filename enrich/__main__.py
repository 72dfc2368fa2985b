"""``python -m enrich`` runs the ``assetlens`` command line."""

from enrich.cli import main

main()
