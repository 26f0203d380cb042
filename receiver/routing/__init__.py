"""Decisions, all pure functions of (config, alerts, time): each alert's severity (`severity`), its
routes, escalation level and the messages to send (`plan`), what a message says about its
escalation (`paging`), who is on call (`oncall`), and gaps in cover (`coverage`). Nothing here
sends, waits or counts.

May import: model, config.
"""
