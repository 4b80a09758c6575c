# lookout — the two commands a new user runs are `make demo` and `make test`.
GO        ?= go
BIN       := bin/lookout
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
STATE     := $(CURDIR)/.lookout
export LOOKOUT_ORT_LIBRARY ?= $(STATE)/ort/libonnxruntime.so.1
export LOOKOUT_EMBED_ORT_LIBRARY ?= $(LOOKOUT_ORT_LIBRARY)
export LOOKOUT_CLICKHOUSE_ADDR ?= 127.0.0.1:19000
export GOFLAGS ?= -mod=readonly

.PHONY: all setup build demo test lint unit model model-vits14 clean stop

all: build

## setup: install what is missing and start the local ClickHouse (idempotent)
setup:
	@scripts/setup.sh

## build: compile bin/lookout
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/lookout

## demo: the main job — broker, service and simulator; prints when drift is flagged
demo: setup build
	$(BIN) demo

## test: everything CI runs, against the real ClickHouse, kfake, kcat and ONNX Runtime
test: setup lint
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -run '^$$' -fuzz FuzzDecodePrediction -fuzztime 20s ./internal/event
	$(GO) test -run '^$$' -fuzz FuzzScanner -fuzztime 10s ./internal/event

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

## model: regenerate the committed tiny random-weight DINOv2-contract model
model:
	scripts/setup.sh --python
	/usr/bin/python3 scripts/gen_model.py --out models/dinov2-tiny-random.onnx

## model-vits14: a full ViT-S/14-shaped random model for benchmarks (not committed)
model-vits14:
	scripts/setup.sh --python
	/usr/bin/python3 scripts/gen_model.py --preset vits14 --out $(STATE)/models/dinov2-vits14-random.onnx

## stop: stop the local ClickHouse started by setup
stop:
	@scripts/setup.sh --stop

clean:
	rm -rf bin
