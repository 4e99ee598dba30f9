# The image the migrate and worker services run, and the bplab CLI for anyone without a local install.
FROM python:3.11-slim

# One BLAS thread per process: a worker's parallelism comes from its processes.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1

WORKDIR /src
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir engine service worker migrations \
    && touch engine/__init__.py service/__init__.py worker/__init__.py migrations/__init__.py \
    && pip install . \
    && pip uninstall --yes bplab
COPY engine ./engine
COPY service ./service
COPY worker ./worker
COPY migrations ./migrations
RUN pip install --no-deps . && rm -rf /src/build

# A worker needs no privilege (and Celery warns when it runs as root).
RUN useradd --create-home --uid 10001 bplab
USER bplab
WORKDIR /home/bplab

CMD ["bplab", "--help"]
