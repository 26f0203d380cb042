"""What a person reads: the default text of each channel (`render`) and the routing file's
Jinja2 overrides (`templates`). Pure functions of a notification.

May import: model.
"""
