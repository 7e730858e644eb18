# The worker and API image that temporal-dev.yml builds (`docker compose -f temporal-dev.yml up`).
# Without Docker, `make dev` runs the same stack from the virtualenv.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
# Bytecode at build time (PYTHONDONTWRITEBYTECODE stops it at run time): with
# TICKETFLOW_WORKFLOW_SANDBOX=true the sandbox imports workflows/ afresh for each ticket
# it rebuilds, and without .pyc files a 10:00 herd spent a third of the worker's CPU
# compiling them (docs/benchmarks.md); every process starts faster with them too.
RUN pip install --compile . \
    && python -m compileall -q /app \
    && useradd --create-home --uid 10001 ticketflow \
    && mkdir -p /app/.data && chown ticketflow /app/.data

USER ticketflow
CMD ["ticketflow", "worker"]
