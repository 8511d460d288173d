"""The S3 source: key prefixes in one bucket, claims as leases, optional SQS notifications."""
