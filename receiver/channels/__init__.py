"""One module per vendor; `base` holds the protocol they share."""
