# batchy and waitsy in one small image.
#
#   docker build -t batchy .
#   docker run -p 5000:5000 -e BATCHY_TOKENS="admin ops $(openssl rand -hex 16)" batchy
#
# The image listens on 0.0.0.0, so batchy's protected mode makes auth required: give tokens with
# BATCHY_TOKENS or a mounted BATCHY_TOKENS_FILE (see docs/deployment.md), or it refuses to start.

# Build: static binaries, no cgo.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/batchy ./cmd/batchy && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/waitsy ./cmd/waitsy && \
    mkdir -p /out/data

# Run: a minimal base, as a non-root user. Time zones are compiled into the binary (time/tzdata).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/batchy /out/waitsy /usr/local/bin/
COPY cfg /etc/batchy/cfg
# The embedded store's directory, owned by the user batchy runs as (a fresh volume copies it).
COPY --from=build --chown=nonroot:nonroot /out/data /home/nonroot/data
WORKDIR /home/nonroot
ENV BATCHY_ADDR=0.0.0.0:5000 \
    BATCHY_CFG_DIR=/etc/batchy/cfg \
    BATCHY_DATA_FILE=/home/nonroot/data/batchy.json \
    BATCHY_LOG_FORMAT=json
VOLUME /home/nonroot/data
EXPOSE 5000
USER nonroot
# The image has no shell or curl: batchy asks its own /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/batchy", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/batchy"]
CMD ["serve"]
