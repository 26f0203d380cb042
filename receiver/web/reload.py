"""Hot reload of the routing file: on SIGHUP, and when the file changes on disk.

Kubernetes updates a mounted ConfigMap by swapping a `..data` symlink, so the watcher compares
the resolved path and the file's identity, not only its mtime. An invalid file never replaces a
working one: the old config stays, every problem is logged, and the reload gauge says 0. Nothing
raised while reloading escapes: a SIGHUP handler or a watcher that died would leave the gauge
at 1 and every later edit unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from receiver.config.load import load_config
from receiver.config.types import Config
from receiver.config.yaml_file import ConfigError
from receiver.web.logs import Redactor
from receiver.web.service import Service

log = logging.getLogger("receiver.reload")

Fingerprint = tuple[str, int, int, int] | None


def fingerprint(path: Path) -> Fingerprint:
    """What changes when the file, or the symlink chain leading to it, changes."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return real, st.st_ino, st.st_mtime_ns, st.st_size


class Reloader:
    def __init__(
        self,
        path: Path,
        service: Service,
        environ: Mapping[str, str],
        redactor: Redactor,
        *,
        secrets_required: bool,
    ) -> None:
        self.path = path
        self.service = service
        self.environ = environ
        self.redactor = redactor
        self.secrets_required = secrets_required
        self._seen = fingerprint(path)

    def reload(self, reason: str) -> bool:
        """Load, validate and swap; on any problem, or anything raised at all, keep the running
        config, log why, and set the gauge to 0."""
        try:
            config = load_config(self.path, self.environ, secrets_required=self.secrets_required)
        except ConfigError as e:
            problems = [str(p) for p in e.problems]
        except Exception as e:
            log.exception("cannot load the routing file", extra={"reason": reason})
            problems = [f"{self.path}:1: (file): cannot load: {type(e).__name__}: {e}"]
        else:
            running = self.service.config
            try:
                self._swap(config, reason)
            except Exception as e:
                log.exception("cannot switch to the new routing file", extra={"reason": reason})
                with contextlib.suppress(Exception):
                    self.service.swap(running)
                problems = [f"{self.path}:1: (file): cannot switch to it: {type(e).__name__}: {e}"]
            else:
                return True
        self.service.metrics.config_reload_success.set(0)
        for problem in problems:
            log.error("routing file rejected", extra={"problem": problem, "reason": reason})
        log.error(
            "reload failed; keeping the running configuration",
            extra={"problems": len(problems), "reason": reason},
        )
        return False

    def _swap(self, config: Config, reason: str) -> None:
        self.redactor.add(config.secrets)
        if config.limits.max_body_bytes != self.service.config.limits.max_body_bytes:
            log.warning("limits.max_body_bytes takes effect at the next restart")
        self.service.swap(config)
        metrics = self.service.metrics
        metrics.config_reload_success.set(1)
        metrics.config_reload_time.set_to_current_time()
        log.info(
            "routing file reloaded", extra={"reason": reason, "routes": len(config.all_routes())}
        )

    def changed(self) -> bool:
        current = fingerprint(self.path)
        if current == self._seen:
            return False
        self._seen = current
        return current is not None

    async def watch(self, interval: float) -> None:
        """Poll the file: cheap, portable, and sees ConfigMap symlink swaps."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.changed():
                    self.reload("file changed")
            except Exception:
                # Keep watching: a dead watcher would leave every later edit unseen.
                log.exception("routing file watcher failed; still watching")
