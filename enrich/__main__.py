"""``python -m assetlens.enrich`` runs the ``assetlens`` command line."""

from assetlens.enrich.cli import main

main()
