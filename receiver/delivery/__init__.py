"""Sending a plan's messages: fan-out with retries under one deadline, each message claimed in
the shared store before it is sent and paced per destination (`fanout`), and forwarding Sentry
events into Alertmanager (`forward`).

May import: model, config, routing, channels, metrics, store.
"""
