"""What a person reads: one view of the group that every channel's text is made from (`view`),
the links a message offers (`links`), the default text of each channel (`render`), speech written
for the ear (`spoken`), the routing file's Jinja2 overrides (`templates`), one escaping function per
output format for the text strangers write (`escape`), and SMS length as Twilio bills it
(`sms_length`). Pure functions of a notification (and the plan's time it carries).

May import: model.
"""
