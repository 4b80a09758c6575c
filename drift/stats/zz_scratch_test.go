package stats

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestScratchErrors(t *testing.T) {
	f, _ := os.Open("/tmp/kstwo.txt")
	sc := bufio.NewScanner(f)
	worst := 0.0
	for sc.Scan() {
		var n int
		var x, sf float64
		fmt.Sscanf(strings.Trim(strings.TrimSpace(sc.Text()), "{},"), "%d, %g, %g", &n, &x, &sf)
		got := kolmogorovSF(n, x)
		if sf > 0 {
			e := math.Abs(got-sf) / sf
			if e > 1e-13 {
				fmt.Println(n, x, got, sf, e)
			}
			worst = max(worst, e)
		} else if got != 0 {
			fmt.Println("nonzero", n, x, got)
		}
	}
	fmt.Println("worst", worst)
}

func TestScratchTiming(t *testing.T) {
	for _, c := range [][4]int{{10000, 9999, 0, 5000}, {10000, 9999, 0, 1000000}, {10000, 9999, 0, 0}, {1000000, 1000000, 0, 3000}, {1000000, 999999, 0, 100000}} {
		x := modularSample(c[0], 7919, 1000003, 0)
		y := modularSample(c[1], 104729, 1000003, c[3])
		st := time.Now()
		r, _ := KSTwoSample(x, y)
		fmt.Println(c, r, time.Since(st))
	}
}

func TestScratchMMDCalib(t *testing.T) {
	rej := 0
	for seed := range uint64(2000) {
		rng := seeded(5000 + seed)
		x := gaussianSample(rng, 30, 4, 0)
		y := gaussianSample(rng, 45, 4, 0)
		res, _ := MMDTest(x, y, 199, rng)
		if res.PValue <= 0.05 {
			rej++
		}
	}
	fmt.Println("null rejections of 2000:", rej)
	maxp := 0.0
	for seed := range uint64(50) {
		rng := seeded(900 + seed)
		x := gaussianSample(rng, 100, 16, 0)
		y := gaussianSample(rng, 100, 16, 0.5)
		res, _ := MMDTest(x, y, 500, rng)
		maxp = max(maxp, res.PValue)
		if seed == 0 { fmt.Println(res) }
	}
	fmt.Println("max p over 50 shift seeds:", maxp)
}
