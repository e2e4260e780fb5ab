# The collector image: the project installed in a virtual environment on a slim Python,
# run as an unprivileged user that may read serial and USB instruments. Multi-arch (the
# Raspberry Pi's arm64 and amd64): every dependency has wheels for both, so the final
# image needs no compiler.
#
#   docker build -t instrument-collector .
#   docker run --rm instrument-collector check      # the embedded defaults
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY plugins ./plugins
RUN python -m venv /opt/collector \
    && /opt/collector/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/collector/bin/collector plugins

FROM ${PYTHON_IMAGE}
# dialout owns serial nodes (RAVEn, EMU-2, serial 52x meters), plugdev the SE521's USB
# and hidraw nodes (deploy/udev/70-instruments.rules); docker-compose.yml adds the
# host's ids of both groups too, for hosts where they differ.
RUN groupadd --system --gid 10001 collector \
    && useradd --system --uid 10001 --gid collector --groups dialout,plugdev \
        --home-dir /var/lib/collector --shell /usr/sbin/nologin collector \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/collector
COPY --from=build /opt/collector /opt/collector
ENV PATH=/opt/collector/bin:$PATH \
    STATE_DIRECTORY=/var/lib/collector \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/collector
VOLUME ["/var/lib/collector"]
# SIGTERM: stop the inputs, flush within shutdown_timeout (10 s by default), exit.
STOPSIGNAL SIGTERM
# Healthy while the agent's schedule loop turns: it touches the heartbeat every 10 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "find /var/lib/collector/heartbeat -newermt '-60 seconds' | grep -q ."]
ENTRYPOINT ["collector"]
CMD ["run"]
