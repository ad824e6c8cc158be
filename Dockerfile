# syntax=docker/dockerfile:1
# The application image: web (gunicorn), worker and beat all run from it (docker-compose.yml).
#
# Two stages: `build` turns the project and every dependency into wheels; `runtime` installs only those wheels,
# so the image carries no compiler, no pip cache and no source tree. Every dependency ships wheels for this
# platform, so the build stage needs no apt packages either. The Sudachi dictionary (SudachiDict-core, pinned
# in pyproject.toml) is one of those wheels, and the runtime stage loads it once so that a broken dictionary
# fails the build instead of the first search.

# Patch-level tag: rebuilding gives the same interpreter; bump it deliberately for security releases.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs (see .dockerignore: everything else stays out of the build context).
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY indexer/ indexer/
COPY crawlers/ crawlers/
COPY search_app/ search_app/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .


FROM python:3.11.14-slim-bookworm AS runtime

# MALLOC_ARENA_MAX=2: glibc gives each thread that allocates an arena of its own (up to 8 per core). Over T29's
# 10-minute load (benchmarks/load_t29.py, 100k records, same data, same day) the gthread workers' heap grew 22 %
# (RSS 12 %) with glibc's default, while Python's own allocations stayed flat; with two arenas, 7.8 % (RSS 2.7 %).
# glibc reads it at start, so it lives in the environment, not in Python.
ENV MALLOC_ARENA_MAX=2 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    LIBRARY_DATA_DIR=/var/lib/library

# A fixed, unprivileged uid/gid, so volume ownership stays the same across rebuilds.
RUN groupadd --system --gid 10001 library \
    && useradd --system --uid 10001 --gid library --home-dir /var/lib/library --no-create-home \
        --shell /usr/sbin/nologin library \
    && install --directory --owner=library --group=library --mode=0750 /var/lib/library

# The wheels are bind-mounted from the build stage, not copied, so they never become a layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && python -c "from sudachipy import Dictionary; Dictionary(dict='core').create()"

WORKDIR /app
COPY deploy/gunicorn.conf.py deploy/healthcheck.py deploy/

USER 10001:10001

EXPOSE 8000

# For the web service; worker and beat serve no HTTP and switch this off in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "search_app:create_app()"]
