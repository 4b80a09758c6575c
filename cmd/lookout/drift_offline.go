package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/lookout-dev/lookout/drift/stats"
	"github.com/lookout-dev/lookout/internal/config"
)

// psiFloor is the conventional "moderate shift" PSI threshold.
const psiFloor = 0.1

// offlineResult is what `lookout drift test` prints.
type offlineResult struct {
	Method    string  `json:"method"`
	Statistic float64 `json:"statistic"`
	PValue    float64 `json:"p_value"`
	Effect    float64 `json:"effect"`
	EffectIs  string  `json:"effect_is"`
	MinEffect float64 `json:"min_effect"`
	Alpha     float64 `json:"alpha"`
	Drift     bool    `json:"drift"`
	NRef      float64 `json:"n_ref"`
	NCur      float64 `json:"n_cur"`
	Note      string  `json:"note,omitempty"`
}

// runDriftTest is the offline, reproducible form of the job's tests:
// `lookout drift test -method ks|mmd|chi2|psi|js -ref FILE -cur FILE [-json]`.
func runDriftTest(cfg config.Drift, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("lookout drift test", flag.ContinueOnError)
	method := fs.String("method", "ks", "ks (one number per row), mmd (one vector per row), chi2|psi|js (a label, or label,count, per row)")
	refPath := fs.String("ref", "", "reference file (CSV or JSON lines)")
	curPath := fs.String("cur", "", "current file (CSV or JSON lines)")
	asJSON := fs.Bool("json", false, "print JSON")
	perms := fs.Int("permutations", cfg.Permutations, "mmd: permutations")
	seed := fs.Uint64("seed", 1, "mmd: permutation seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *refPath == "" || *curPath == "" {
		return errors.New("drift test: -ref and -cur are required")
	}
	res, err := offlineTest(cfg, *method, *refPath, *curPath, *perms, *seed)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	decision := "no drift"
	if res.Drift {
		decision = "DRIFT"
	}
	fmt.Fprintf(w, "method=%s statistic=%.10g p_value=%.10g effect=%.10g (%s, floor %g) alpha=%g n_ref=%g n_cur=%g decision=%s\n",
		res.Method, res.Statistic, res.PValue, res.Effect, res.EffectIs, res.MinEffect, res.Alpha, res.NRef, res.NCur, decision)
	if res.Note != "" {
		fmt.Fprintln(w, res.Note)
	}
	return nil
}

func offlineTest(cfg config.Drift, method, refPath, curPath string, perms int, seed uint64) (offlineResult, error) {
	r := offlineResult{Method: method, Alpha: cfg.Alpha}
	switch method {
	case "ks":
		x, err := readNumbers(refPath)
		if err != nil {
			return r, err
		}
		y, err := readNumbers(curPath)
		if err != nil {
			return r, err
		}
		ks, err := stats.KSTwoSample(x, y)
		if err != nil {
			return r, err
		}
		r.Statistic, r.PValue, r.Effect, r.EffectIs, r.MinEffect = ks.D, ks.PValue, ks.D, "KS D", cfg.MinKS
		r.NRef, r.NCur = float64(len(x)), float64(len(y))
		if ks.Exact {
			r.Note = "exact p-value (as scipy.stats.ks_2samp method=auto)"
		}
	case "mmd":
		x, err := readVectors(refPath)
		if err != nil {
			return r, err
		}
		y, err := readVectors(curPath)
		if err != nil {
			return r, err
		}
		m, err := stats.MMDTest(x, y, perms, rand.New(rand.NewPCG(seed, 0x10c0)))
		if err != nil {
			return r, err
		}
		r.Statistic, r.PValue, r.Effect, r.EffectIs, r.MinEffect = m.MMD2, m.PValue, m.MMD2, "MMD²", cfg.MinMMD2
		r.NRef, r.NCur = float64(len(x)), float64(len(y))
		r.Note = fmt.Sprintf("rbf bandwidth %.6g (median heuristic), %d permutations, seed %d", m.Bandwidth, perms, seed)
	case "chi2", "psi", "js":
		ref, err := readCounts(refPath)
		if err != nil {
			return r, err
		}
		cur, err := readCounts(curPath)
		if err != nil {
			return r, err
		}
		chi, err := stats.ChiSquare(ref, cur)
		if err != nil {
			return r, err
		}
		js, _ := stats.JensenShannonDistance(ref, cur)
		psi, _ := stats.PSI(ref, cur, 1e-4)
		r.PValue = chi.PValue
		r.NRef, r.NCur = sum(ref), sum(cur)
		switch method {
		case "chi2":
			r.Statistic, r.Effect, r.EffectIs, r.MinEffect = chi.Statistic, js, "Jensen–Shannon distance", cfg.MinJS
			r.Note = fmt.Sprintf("dof=%d (as scipy.stats.chi2_contingency correction=False)", chi.DOF)
		case "psi":
			r.Statistic, r.Effect, r.EffectIs, r.MinEffect = psi, psi, "PSI", psiFloor
			r.Note = "p-value from the chi-square test of the same table"
		case "js":
			r.Statistic, r.Effect, r.EffectIs, r.MinEffect = js, js, "Jensen–Shannon distance", cfg.MinJS
			r.Note = "p-value from the chi-square test of the same table"
		}
	default:
		return r, fmt.Errorf("drift test: unknown method %q (want ks, mmd, chi2, psi or js)", method)
	}
	r.Drift = r.PValue < r.Alpha && r.Effect >= r.MinEffect
	return r, nil
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// readRows yields every non-empty line of a CSV or JSON-lines file as
// fields: a JSON array gives its elements, a JSON object its "label" and
// "count", a JSON scalar itself, and anything else the CSV fields.
func readRows(path string, each func(line int, fields []string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields, err := splitRow(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if err := each(n, fields); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

func splitRow(line string) ([]string, error) {
	switch line[0] {
	case '[':
		var v []json.RawMessage
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			return nil, err
		}
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = unquote(e)
		}
		return out, nil
	case '{':
		var v struct {
			Label json.RawMessage `json:"label"`
			Count json.RawMessage `json:"count"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			return nil, err
		}
		if v.Count == nil {
			return []string{unquote(v.Label)}, nil
		}
		return []string{unquote(v.Label), unquote(v.Count)}, nil
	case '"':
		var s string
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	rec, err := csv.NewReader(strings.NewReader(line)).Read()
	if err != nil {
		return nil, err
	}
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	return rec, nil
}

func unquote(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func readNumbers(path string) ([]float64, error) {
	var out []float64
	err := readRows(path, func(_ int, f []string) error {
		if len(f) != 1 {
			return fmt.Errorf("want one value per row, got %d", len(f))
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func readVectors(path string) ([][]float32, error) {
	var out [][]float32
	err := readRows(path, func(_ int, f []string) error {
		v := make([]float32, len(f))
		for i, s := range f {
			x, err := strconv.ParseFloat(s, 32)
			if err != nil {
				return err
			}
			v[i] = float32(x)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func readCounts(path string) (map[string]float64, error) {
	out := map[string]float64{}
	err := readRows(path, func(_ int, f []string) error {
		switch len(f) {
		case 1:
			out[f[0]]++
		case 2:
			c, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return err
			}
			out[f[0]] += c
		default:
			return fmt.Errorf("want a label or label,count per row, got %d fields", len(f))
		}
		return nil
	})
	return out, err
}
