"""`python -m mammo_batch` runs the CLI."""

from mammo_batch.cli import main

main()
