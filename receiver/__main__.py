"""`python -m receiver` is the same as the `oncall-router` command."""

from receiver.cli import main

raise SystemExit(main())
