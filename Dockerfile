# Hearth's image: the package and its dependencies; the command picks the part to run.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
RUN pip install --no-cache-dir .
COPY config ./config
ENV HEARTH_CONFIG_DIR=/app/config/couples HEARTH_DATA_DIR=/data
VOLUME ["/data"]
CMD ["hearth", "run", "--host", "0.0.0.0"]
