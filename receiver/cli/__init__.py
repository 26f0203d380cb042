"""The `oncall-router` command: `main` parses arguments and runs serve, check, route and who;
`commands/` holds one module per further subcommand; `tools` the helpers they share.

May import: model, config, messages, sources, routing, channels, metrics, delivery, ack, store, web.
"""
