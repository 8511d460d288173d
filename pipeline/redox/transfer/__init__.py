"""Redox's Transferring Files path: find embedded documents in a large message, upload them, put
the URIs in their place.
"""
