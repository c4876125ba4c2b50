"""`python -m harness` is the same as the `harness` console script."""

from harness.cli import main

main()
