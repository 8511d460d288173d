"""The path of one file: intake (settle, claim), check, route, work, finish, recovery, and the
runner that calls them in order.
"""
