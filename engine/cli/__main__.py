"""`python -m mammo_batch.engine.cli` runs the CLI (as the console script does)."""

from mammo_batch.engine.cli import main

main()
