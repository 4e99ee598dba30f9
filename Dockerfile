# The image the migrate and worker services run, and the bplab CLI for anyone without a local install.
#
# Build arguments, both for machines that cannot reach the registries (tests/compose_stack builds
# this file that way); a plain `docker build .` is the same build as ever:
#   PYTHON_IMAGE  the base image: any Debian-like image with python3.11, pip and useradd on PATH.
#   WHEELHOUSE    where pip finds every wheel it needs instead of the package index (pip's
#                 --find-links: a directory listing URL or a path in the image); empty: PyPI.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
ARG WHEELHOUSE=""

# One BLAS thread per process: a worker's parallelism comes from its processes.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1

WORKDIR /src
# Dependencies first, so that a code change does not reinstall them. With a wheelhouse, pip is
# told to use nothing else (also for the build backend, setuptools, in its isolated build).
# The stub packages' build output goes too: pip builds in /src, and setuptools copies a module
# into build/ only when it is newer than the copy there, which the real files COPY'd below
# (with their checkout's older times) are not: the image got the empty stub __init__.py files
# and `bplab` failed on its first import (found by tests/compose_stack, issue 23).
COPY pyproject.toml README.md ./
RUN mkdir engine service worker migrations \
    && touch engine/__init__.py service/__init__.py worker/__init__.py migrations/__init__.py \
    && pip install ${WHEELHOUSE:+--no-index --find-links "$WHEELHOUSE"} . \
    && pip uninstall --yes bplab \
    && rm -rf build bplab.egg-info engine service worker migrations
COPY engine ./engine
COPY service ./service
COPY worker ./worker
COPY migrations ./migrations
RUN pip install ${WHEELHOUSE:+--no-index --find-links "$WHEELHOUSE"} --no-deps . \
    && rm -rf /src/build /src/bplab.egg-info

# A worker needs no privilege (and Celery warns when it runs as root).
RUN useradd --create-home --uid 10001 bplab
USER bplab
WORKDIR /home/bplab

CMD ["bplab", "--help"]
