"""Sending a plan's messages: fan-out with retries under one deadline (`fanout`), idempotency
(`dedupe`), per-destination pacing (`pacing`), and forwarding Sentry events into Alertmanager
(`forward`).

May import: model, config, routing, channels, metrics.
"""
