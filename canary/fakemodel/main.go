// Command fakemodel is a minimal KServe v1 model server for trying the canary
// router and benchmarking it: it answers every POST with one fixed
// classification per instance, so any difference measured is the proxy's.
//
//	go run ./canary/fakemodel -listen 127.0.0.1:8500 -class good -confidence 0.9
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8500", "address to serve on")
	class := flag.String("class", "good", "class every prediction names")
	conf := flag.Float64("confidence", 0.9, "probability of that class")
	delay := flag.Duration("delay", 0, "added latency per request")
	flag.Parse()
	other := "dent"
	if *class == other {
		other = "good"
	}
	one, _ := json.Marshal(map[string]any{"probs": map[string]float64{*class: *conf, other: 1 - *conf}})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Instances []json.RawMessage `json:"instances"`
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		_ = json.Unmarshal(body, &req)
		if *delay > 0 {
			time.Sleep(*delay)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"predictions":[`)
		for i := range max(len(req.Instances), 1) {
			if i > 0 {
				fmt.Fprint(w, ",")
			}
			_, _ = w.Write(one)
		}
		fmt.Fprint(w, "]}")
	})
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
