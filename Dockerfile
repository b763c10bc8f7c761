# eventgate container image: a static binary on a small Debian runtime, as a non-root user.
# Not exercised by CI (there is no Docker engine on its machines); it mirrors what the tests build
# and run: `go build ./cmd/eventgate`, configured only through EVENTGATE_* variables.
#
#   docker build -t eventgate .
#   docker run -p 8080:8080 -v eventgate-data:/var/lib/eventgate eventgate      # one instance, log on the volume
#   docker run --rm -p 8080:8080 -e EVENTGATE_REDIS_URL=redis://redis:6379/0 eventgate   # several, on Redis

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (no cgo), no local paths or debug tables in the binary.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/eventgate ./cmd/eventgate

FROM debian:bookworm-slim
# curl only for the health check: the binary has no client mode of its own.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin eventgate \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/eventgate
COPY --from=build /out/eventgate /usr/local/bin/eventgate
USER 10001:10001
# The log, idempotency receipts, job state and webhooks live in EVENTGATE_DATA_DIR (one process
# per folder) unless EVENTGATE_REDIS_URL is set, which wins. Mount a volume there to keep them
# across container restarts (docs/storage.md); without one, Docker keeps an anonymous volume.
ENV EVENTGATE_ADDR=:8080 \
    EVENTGATE_LOG_FORMAT=json \
    EVENTGATE_DATA_DIR=/var/lib/eventgate
VOLUME ["/var/lib/eventgate"]
EXPOSE 8080
# Liveness, not readiness: a Redis outage makes /readyz 503 but restarting eventgate would not
# help (it resumes by itself when Redis returns).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
# SIGTERM starts the graceful drain (EVENTGATE_SHUTDOWN_GRACE, 10s by default): give the
# container longer than that to stop (compose.yaml sets stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/eventgate"]
