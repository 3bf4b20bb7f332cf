# Build: a static binary, no cgo.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/batchy ./cmd/batchy

# Run: a minimal base, as a non-root user. Time zones are compiled into the binary (time/tzdata).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/batchy /usr/local/bin/batchy
COPY cfg /etc/batchy/cfg
WORKDIR /home/nonroot
ENV BATCHY_ADDR=0.0.0.0:5000 \
    BATCHY_CFG_DIR=/etc/batchy/cfg \
    BATCHY_DATA_FILE=/home/nonroot/data/batchy.json
VOLUME /home/nonroot/data
EXPOSE 5000
USER nonroot
ENTRYPOINT ["/usr/local/bin/batchy"]
CMD ["serve"]
