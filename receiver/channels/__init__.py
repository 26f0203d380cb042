"""One module per vendor; `base` holds the protocol they share.

Each renders and sends one notification in one request and classifies
the vendor's answer; `registry` builds the senders for a config.

May import: model, config, messages.
"""
