"""`python -m l7scope`: the same as the `l7scope` command."""
import sys

from l7scope.cli import main

sys.exit(main())
