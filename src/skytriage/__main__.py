"""``python -m skytriage`` runs the command line."""

from skytriage.cli import main

main()
