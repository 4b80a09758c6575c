package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lookout-dev/lookout/internal/config"
)

// scipyCheck reads the same files as `lookout drift test` and prints
// scipy's statistic and p-value as JSON.
const scipyCheck = `
import json, sys
import numpy as np
from scipy import stats
method, ref, cur = sys.argv[1:4]
def rows(path):
    out = []
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        if line[0] in '[{"':
            v = json.loads(line)
            if isinstance(v, dict):
                v = [v["label"], v["count"]] if "count" in v else [v["label"]]
            elif not isinstance(v, list):
                v = [v]
            out.append([str(x) for x in v])
        else:
            out.append([x.strip() for x in line.split(",")])
    return out
if method == "ks":
    x = [float(r[0]) for r in rows(ref)]
    y = [float(r[0]) for r in rows(cur)]
    r = stats.ks_2samp(x, y)
    print(json.dumps({"statistic": float(r.statistic), "p_value": float(r.pvalue)}))
else:
    def counts(path):
        c = {}
        for r in rows(path):
            c[r[0]] = c.get(r[0], 0.0) + (float(r[1]) if len(r) > 1 else 1.0)
        return c
    a, b = counts(ref), counts(cur)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, 0) + b.get(k, 0) > 0)
    table = np.array([[a.get(k, 0.0) for k in keys], [b.get(k, 0.0) for k in keys]])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    print(json.dumps({"statistic": float(chi2), "p_value": float(p)}))
`

func writeLines(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func numbers(rng *rand.Rand, n int, shift float64, round bool, asJSON bool) []string {
	out := make([]string, n)
	for i := range out {
		v := rng.NormFloat64() + shift
		if round {
			v = math.Round(v*4) / 4 // heavy ties
		}
		out[i] = fmt.Sprintf("%.17g", v)
		if asJSON {
			out[i] = fmt.Sprintf("[%.17g]", v)
		}
	}
	return out
}

// TestDriftTestAgreesWithScipy runs `lookout drift test` and scipy 1.10 on
// the same files: KS (exact, asymptotic, with ties) and chi-square must
// agree to 1e-6 on the statistic and 1e-4 relative on the p-value.
func TestDriftTestAgreesWithScipy(t *testing.T) {
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import scipy, numpy").CombinedOutput(); err != nil {
		t.Fatalf("python3 with scipy is needed (run `make setup`, which installs python3-scipy): %v %s", err, out)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	labels := func(n int, weights []float64, withCounts bool) []string {
		counts := make([]int, len(weights))
		for range n {
			u, i := rng.Float64(), 0
			for u > weights[i] && i < len(weights)-1 {
				u -= weights[i]
				i++
			}
			counts[i]++
		}
		var out []string
		for i, c := range counts {
			if withCounts {
				out = append(out, fmt.Sprintf(`{"label": "class-%d", "count": %d}`, i, c))
			} else {
				for range c {
					out = append(out, fmt.Sprintf("class-%d", i))
				}
			}
		}
		return out
	}
	cases := []struct {
		name, method string
		ref, cur     []string
	}{
		{"ks exact", "ks", numbers(rng, 300, 0, false, false), numbers(rng, 250, 0.2, false, false)},
		{"ks exact json", "ks", numbers(rng, 400, 0, false, true), numbers(rng, 400, 0.05, false, true)},
		{"ks ties", "ks", numbers(rng, 500, 0, true, false), numbers(rng, 700, 0.1, true, false)},
		{"ks asymptotic", "ks", numbers(rng, 12000, 0, false, false), numbers(rng, 11000, 0.03, false, false)},
		{"chi2 labels", "chi2", labels(2000, []float64{0.5, 0.2, 0.2, 0.1}, false), labels(1500, []float64{0.45, 0.25, 0.2, 0.1}, false)},
		{"chi2 counts", "chi2", labels(5000, []float64{0.6, 0.3, 0.1}, true), labels(5000, []float64{0.55, 0.3, 0.15}, true)},
	}
	cfg := config.Default().Drift
	for i, c := range cases {
		ref := writeLines(t, dir, fmt.Sprintf("ref%d", i), c.ref)
		cur := writeLines(t, dir, fmt.Sprintf("cur%d", i), c.cur)
		var out bytes.Buffer
		if err := runDriftTest(cfg, []string{"-method", c.method, "-ref", ref, "-cur", cur, "-json"}, &out); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got offlineResult
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v in %s", c.name, err, out.String())
		}
		pyOut, err := exec.Command(py, "-c", scipyCheck, c.method, ref, cur).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: scipy: %v\n%s", c.name, err, pyOut)
		}
		var want struct {
			Statistic float64 `json:"statistic"`
			PValue    float64 `json:"p_value"`
		}
		if err := json.Unmarshal(pyOut, &want); err != nil {
			t.Fatalf("%s: %v in %s", c.name, err, pyOut)
		}
		t.Logf("%-14s lookout stat=%.10g p=%.10g | scipy stat=%.10g p=%.10g", c.name, got.Statistic, got.PValue, want.Statistic, want.PValue)
		if math.Abs(got.Statistic-want.Statistic) > 1e-6 {
			t.Errorf("%s: statistic %v, scipy %v", c.name, got.Statistic, want.Statistic)
		}
		if math.Abs(got.PValue-want.PValue) > 1e-4*math.Max(want.PValue, 1e-300) {
			t.Errorf("%s: p-value %v, scipy %v (relative error %.2g)", c.name, got.PValue, want.PValue,
				math.Abs(got.PValue-want.PValue)/want.PValue)
		}
	}
}

func TestDriftTestMethods(t *testing.T) {
	dir := t.TempDir()
	vec := func(shift float64) []string {
		rng := rand.New(rand.NewPCG(uint64(shift*100)+1, 2))
		var out []string
		for range 60 {
			out = append(out, fmt.Sprintf("%g,%g,%g", rng.NormFloat64()+shift, rng.NormFloat64(), rng.NormFloat64()))
		}
		return out
	}
	ref, cur := writeLines(t, dir, "ref.csv", vec(0)), writeLines(t, dir, "cur.csv", vec(2))
	var out bytes.Buffer
	if err := runDriftTest(config.Default().Drift, []string{"-method", "mmd", "-ref", ref, "-cur", cur}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "decision=DRIFT") || !strings.Contains(out.String(), "p_value=0.001996007984") {
		t.Errorf("mmd on a 2σ shift: %s", out.String())
	}
	a := writeLines(t, dir, "a", []string{"x,50", "y,50"})
	b := writeLines(t, dir, "b", []string{"x,80", "y,20"})
	for _, m := range []string{"psi", "js"} {
		out.Reset()
		if err := runDriftTest(config.Default().Drift, []string{"-method", m, "-ref", a, "-cur", b}, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "decision=DRIFT") {
			t.Errorf("%s: %s", m, out.String())
		}
	}
	if err := runDriftTest(config.Default().Drift, []string{"-method", "nope", "-ref", a, "-cur", b}, &out); err == nil {
		t.Error("unknown method accepted")
	}
}
