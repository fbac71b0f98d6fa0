# Hearth's image: the package and its dependencies; the command picks the part to run
# (`docker run IMAGE scheduler`, `worker`, `web`, `migrate`, `backup PATH`, ...).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# pg_dump and pg_restore for `hearth backup` / `hearth restore` on PostgreSQL: Debian 12's
# client is 15, the major version of docker-compose.yml's postgres:15 (pg_dump refuses a
# newer server than itself).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
# A user of its own: the data dir holds the couples' words and Hearth's secrets.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home hearth
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
RUN pip install --no-cache-dir .
COPY config ./config
# 0700 and Hearth's: a new named volume mounted here takes this owner and mode.
RUN install -d -m 0700 -o hearth -g hearth /data
ENV HEARTH_CONFIG_DIR=/app/config/couples HEARTH_DATA_DIR=/data
USER hearth
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["hearth"]
CMD ["run", "--host", "0.0.0.0"]
