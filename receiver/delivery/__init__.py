"""Sending a plan's messages: fan-out with retries under one deadline, each message claimed in
the shared store before it is sent and paced per destination (`fanout`), forwarding Sentry
events into Alertmanager (`forward`), and delivery receipts: the signed token a page carries so
the vendor's report of it comes back to us (`receipt_tokens`) and what those reports mean
(`receipt_status`); acting on them is the running service's (receiver.web.receipts).

May import: model, config, routing, channels, metrics, store.
"""
