"""Entry point: ``python -m autograder COMMAND`` (see autograder/cli.py)."""
import sys

from autograder.cli import main

sys.exit(main())
