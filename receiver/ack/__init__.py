"""Acknowledgement: where acknowledgements are kept (`store`, marker silences in Alertmanager), the
signed tokens that links, buttons and key presses carry (`tokens`), and recording one whichever
way it arrives (`flow`).

May import: model, config, sources, routing, metrics.
"""
