# Build: the same command CI runs (.ci/run), so the image build cannot drift.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/rcrouter ./cmd/rcrouter \
 && mkdir -p /out/data

# Run: static binary on distroless, as a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rcrouter /usr/local/bin/rcrouter
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/rcrouter
COPY config.example.yaml /etc/rcrouter/config.yaml
ENV RCROUTER_LISTEN=0.0.0.0:8080 \
    RCROUTER_DB=/var/lib/rcrouter/rcrouter.db \
    RCROUTER_ARCHIVE=/var/lib/rcrouter/events.jsonl
VOLUME /var/lib/rcrouter
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rcrouter"]
CMD ["serve", "--config", "/etc/rcrouter/config.yaml"]
