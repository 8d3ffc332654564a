"""``python -m zeroqueue`` runs the command line."""

from zeroqueue.cli import main

main()
