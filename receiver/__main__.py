"""`python -m receiver` is the same as the `oncall-router` command."""

from receiver.cli.main import main

raise SystemExit(main())
