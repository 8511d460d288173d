"""The local-folder source: inbox, processing, done and failed on one filesystem."""
