"""The operator commands: status, retry-failed, report, reconcile (and the delivery summaries they
share).
"""
