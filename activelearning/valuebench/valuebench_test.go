package valuebench

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestSelectionBeatsRandom runs a small loop (fast enough under -race) and
// checks the production strategy reaches random's final accuracy with fewer
// labels.
func TestSelectionBeatsRandom(t *testing.T) {
	c := DefaultConfig()
	c.Pool, c.Test, c.Bursts, c.Budget = 1200, 400, 10, 144
	curves := Run(c)
	for _, s := range Strategies {
		cv := curves[s]
		if len(cv.Budget) == 0 || cv.Budget[len(cv.Budget)-1] != c.Budget {
			t.Fatalf("%s: curve %+v does not end at the budget", s, cv)
		}
	}
	target := curves[Random].Accuracy[len(curves[Random].Accuracy)-1]
	need := BudgetFor(curves[Diverse], target)
	if need < 0 || need >= float64(c.Budget) {
		t.Fatalf("uncertainty+diversity needs %v labels for random's final %.3f (random used %d)", need, target, c.Budget)
	}
}

// TestValueTable prints the label-budget table of BENCHMARKS.md when
// LOOKOUT_AL_VALUE=1 (it takes ~10 s without -race):
//
//	LOOKOUT_AL_VALUE=1 go test -run TestValueTable -v ./activelearning/valuebench
func TestValueTable(t *testing.T) {
	if os.Getenv("LOOKOUT_AL_VALUE") == "" {
		t.Log("set LOOKOUT_AL_VALUE=1 to print the value table")
		return
	}
	var sb strings.Builder
	seeds := []uint64{1, 2, 3}
	sum := map[string][]float64{}
	var budgets []int
	for _, seed := range seeds {
		c := DefaultConfig()
		c.Seed = seed
		if v := os.Getenv("LOOKOUT_AL_SPREAD"); v != "" {
			fmt.Sscan(v, &c.Spread)
		}
		curves := Run(c)
		budgets = curves[Random].Budget
		for _, s := range Strategies {
			if sum[s] == nil {
				sum[s] = make([]float64, len(curves[s].Accuracy))
			}
			for i, a := range curves[s].Accuracy {
				sum[s][i] += a / float64(len(seeds))
			}
		}
	}
	fmt.Fprintf(&sb, "| labels | %s |\n|---|---|---|---|\n", strings.Join(Strategies, " | "))
	for i, b := range budgets {
		if i%5 != 0 && i != len(budgets)-1 {
			continue
		}
		fmt.Fprintf(&sb, "| %d | %.3f | %.3f | %.3f |\n", b, sum[Random][i], sum[Uncertainty][i], sum[Diverse][i])
	}
	mean := map[string]Curve{}
	for _, s := range Strategies {
		mean[s] = Curve{Budget: budgets, Accuracy: sum[s]}
	}
	fmt.Fprintf(&sb, "\n| target accuracy | %s | saved vs random (unc. / unc.+div.) |\n|---|---|---|---|---|\n",
		strings.Join(Strategies, " | "))
	for _, target := range []float64{0.80, 0.85, 0.88} {
		need := map[string]float64{}
		cells := make([]string, 0, len(Strategies))
		for _, s := range Strategies {
			need[s] = BudgetFor(mean[s], target)
			if need[s] < 0 {
				cells = append(cells, "not reached")
			} else {
				cells = append(cells, fmt.Sprintf("%.0f", need[s]))
			}
		}
		saved := "n/a"
		if r := need[Random]; r > 0 && need[Uncertainty] > 0 && need[Diverse] > 0 {
			saved = fmt.Sprintf("%.0f%% / %.0f%%", 100*(1-need[Uncertainty]/r), 100*(1-need[Diverse]/r))
		}
		fmt.Fprintf(&sb, "| %.2f | %s | %s |\n", target, strings.Join(cells, " | "), saved)
	}
	t.Log("\n" + sb.String())
}
