# redox-pipeline as a container: the service (`run`) as a non-root user (docs/operations.md).
#   docker build -t redox-pipeline .
#   docker run -d --name redox-pipeline --stop-timeout 90 \
#     -v /srv/redox-drop:/data -v /etc/redox-pipeline:/etc/redox-pipeline:ro \
#     --env-file /etc/redox-pipeline/env redox-pipeline
# The config's paths must point below /data (e.g. inbox: /data/inbox, state.path: /data/state.db).
# The cron form: docker run --rm --no-healthcheck ... redox-pipeline --once
# Health: the config must set a fixed metrics.port (and metrics.address: 0.0.0.0 to publish it);
# HEALTHCHECK asks the service's /healthz through `redox-pipeline health` (no curl in the image).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIPELINE_CONFIG=/etc/redox-pipeline/config.yaml

# a fixed uid/gid so the mounted drop folder can be owned by it on the host
RUN groupadd --system --gid 10001 redox \
 && useradd --system --uid 10001 --gid redox --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin redox

WORKDIR /build
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
RUN pip install . && cd / && rm -rf /build

RUN mkdir -p /data /etc/redox-pipeline && chown redox:redox /data && chmod 0700 /data
WORKDIR /data
USER redox:redox
# files, sidecars and the journal hold patient data: private to the service user
VOLUME ["/data"]
STOPSIGNAL SIGTERM
# 503 (the circuit breaker open for long, writes failing, the loop stalled, credentials refused)
# or no answer three times in a row: unhealthy
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 \
    CMD ["redox-pipeline", "health"]

ENTRYPOINT ["redox-pipeline", "run"]
CMD ["--log-format", "json"]
