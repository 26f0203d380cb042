"""What a person reads: the default text of each channel (`render`), the routing file's Jinja2
overrides (`templates`), one escaping function per output format for the text strangers write
(`escape`), and SMS length as Twilio bills it (`sms_length`). Pure functions of a notification.

May import: model.
"""
