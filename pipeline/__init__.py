"""redox-pipeline: the file-drop ingestion service that feeds Redox.

Upstream systems drop Redox JSON messages into a folder (or an S3 prefix); the pipeline picks
each complete file up once, sends it to Redox, and moves it to ``done/`` or ``failed/`` beside a
sidecar that records what Redox answered. See README.md and docs/.
"""

__version__ = "0.1.0"
