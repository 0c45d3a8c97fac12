# The gitsync controller image: `docker build -t gitsync:0.1.0 .`
#
# Two stages from the same pinned base. The builder installs gitsync and its dependencies into a
# virtualenv at /opt/gitsync; the final stage copies only that venv (no pip cache, no sources, no
# build tools) and adds what gitsync runs at runtime: git, and ssh for SSH remotes. It runs as the
# unprivileged user 10001 (the Helm chart's runAsUser), works with a read-only root filesystem
# (writes go to --cache-dir and /tmp, both volumes in the chart), and uses in-cluster config when
# started in a pod.

ARG PYTHON_IMAGE=python:3.11.9-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gitsync
WORKDIR /src
# What the package build reads (pyproject.toml names README.md as the long description).
COPY pyproject.toml README.md ./
COPY gitsync ./gitsync
RUN /opt/gitsync/bin/pip install --no-cache-dir . \
    && /opt/gitsync/bin/gitsync version
# The status UI's templates and static files, where gitsync looks for them in an installed venv
# (<prefix>/share/gitsync/web).
COPY web/templates /opt/gitsync/share/gitsync/web/templates
COPY web/static /opt/gitsync/share/gitsync/web/static

FROM ${PYTHON_IMAGE}
# git for fetching sources; openssh-client for ssh:// remotes. A passwd entry for uid 10001 is
# needed too: ssh refuses to run for a user the system does not know.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gitsync \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/gitsync --create-home \
        --shell /usr/sbin/nologin gitsync \
    && mkdir -p /cache \
    && chown 10001:10001 /cache
COPY --from=builder /opt/gitsync /opt/gitsync
ENV PATH=/opt/gitsync/bin:$PATH \
    GITSYNC_WEB_DIR=/opt/gitsync/share/gitsync/web \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/gitsync
EXPOSE 8080
# Plain Python, no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["gitsync"]
CMD ["serve", "--listen=0.0.0.0:8080"]
