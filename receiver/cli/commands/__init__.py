"""Subcommands beyond the core ones: each module here defines `register(sub, add_config_arg)`.

`receiver.cli.main` imports every module in this package and calls its `register`, so adding a
command touches only its own module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable

ConfigArg = Callable[[argparse.ArgumentParser], None]


def register_all(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_config_arg: ConfigArg
) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub, add_config_arg)
