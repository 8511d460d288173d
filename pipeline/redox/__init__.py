"""Everything that talks to Redox: the HTTP client, auth, the rate limit, the Platform API and the
Transferring Files path.
"""
