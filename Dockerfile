# syntax=docker/dockerfile:1
# lookout image: a cgo build of cmd/lookout, the ONNX Runtime library from the
# npm package onnxruntime-node (as scripts/setup.sh does; Debian ships none),
# and the small random-weight test model. Runs as a non-root user.
#
#   docker build -t lookout:dev --build-arg VERSION=$(git describe --always --dirty) .

ARG GO_VERSION=1.26
ARG ORT_VERSION=1.24.1

# ONNX Runtime shared library (onnxruntime_go v1.27 needs ≥ 1.24).
FROM node:22-bookworm-slim AS ort
ARG ORT_VERSION
WORKDIR /ort
RUN npm pack --silent "onnxruntime-node@${ORT_VERSION}" \
    && tar -xzf onnxruntime-node-*.tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
    && mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 /ort/libonnxruntime.so.1 \
    && rm -rf package onnxruntime-node-*.tgz

# The binary. cgo is required: onnxruntime_go loads the library with dlopen.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/lookout ./cmd/lookout

# Runtime: Debian 12 (same glibc as the builder), libstdc++ for ONNX Runtime.
FROM debian:12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 lookout \
    && useradd --system --uid 10001 --gid lookout --home-dir /var/lib/lookout --shell /usr/sbin/nologin lookout \
    && mkdir -p /var/lib/lookout /data/images /etc/lookout \
    && chown lookout:lookout /var/lib/lookout /data/images
COPY --from=ort /ort/libonnxruntime.so.1 /usr/local/lib/lookout/libonnxruntime.so.1
COPY --from=build /out/lookout /usr/local/bin/lookout
COPY models/dinov2-tiny-random.onnx /usr/share/lookout/models/dinov2-tiny-random.onnx
COPY deploy/lookout.yaml /etc/lookout/lookout.yaml
ENV LOOKOUT_CONFIG=/etc/lookout/lookout.yaml \
    LOOKOUT_EMBED_ORT_LIBRARY=/usr/local/lib/lookout/libonnxruntime.so.1
USER lookout:lookout
WORKDIR /var/lib/lookout
EXPOSE 9464
# `lookout healthcheck` GETs /healthz on http.listen: no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/lookout", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/lookout"]
CMD ["serve"]
