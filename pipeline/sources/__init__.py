"""Where files come from and go to: the Source interface, with one implementation per backend
(local folders, S3).
"""
