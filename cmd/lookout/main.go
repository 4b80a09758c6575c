package main

import (
	_ "github.com/ClickHouse/clickhouse-go/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/segmentio/kafka-go"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/yalue/onnxruntime_go"
	_ "gonum.org/v1/gonum/stat/distuv"
	_ "gopkg.in/yaml.v3"
	_ "golang.org/x/image/webp"
)

func main() {}
