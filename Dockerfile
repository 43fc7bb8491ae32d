# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src

# Dependencies first, against empty packages: this layer is rebuilt only when
# pyproject.toml changes, not on every source edit.
COPY pyproject.toml README.md ./
RUN mkdir app worker \
    && touch app/__init__.py worker/__init__.py \
    && pip install . \
    && rm -rf app worker build *.egg-info

# Installed like any wheel, the migrations inside the package: the source is not kept
# (`turnout migrate` and `turnout serve` work from any directory).
COPY . .
RUN pip install --no-deps . \
    && install -m 0755 scripts/prestart.sh /usr/local/bin/turnout-prestart \
    && cd / && rm -rf /src \
    && useradd --create-home --uid 10001 turnout \
    && mkdir /data \
    && chown turnout /data
WORKDIR /data

# Without a DATABASE_URL of its own, the embedded SQLite database lives in the /data volume.
ENV DATABASE_URL=sqlite+aiosqlite:////data/turnout.db
VOLUME ["/data"]

USER turnout
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

CMD ["turnout", "serve", "--host", "0.0.0.0", "--port", "8000"]
