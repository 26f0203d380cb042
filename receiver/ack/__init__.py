"""Acknowledgement: where acknowledgements are kept (`store`, marker silences in Alertmanager), the
signed tokens that links, buttons and key presses carry (`tokens`), the ids of the SMS's short
links to them (`short_links`), and recording one whichever way it arrives (`flow`).

May import: model, config, sources, routing, metrics.
"""
