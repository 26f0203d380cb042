"""The running service: the aiohttp app and its endpoints (`app`), the signed call-back endpoints
(`callbacks/`), the service's state shared by every request (`service`), bearer and signature
checks (`auth`), hot reload, logging, and serving with graceful shutdown (`server`).

May import: model, config, messages, sources, routing, channels, metrics, delivery, ack, store.
"""
