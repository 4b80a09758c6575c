package simulate

import (
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
)

// pool holds the image URIs for every source × condition × class, indexed
// [source][condition][class][i] with condition 0 = normal, 1 = shifted.
type pool [][2][][]string

// poolJob is one scene: the normal and the shifted picture of one part.
type poolJob struct {
	source, class string
	i             int
	paths         [2]string
}

// buildPool lays out the pool's paths and renders the pictures that are not
// on disk yet. Pictures are rendered up front because the embedder fetches
// them later by URI; skipping existing files makes restarts quick.
func buildPool(cfg Config, dir string) (pool, error) {
	p := make(pool, len(cfg.Sources))
	var jobs []poolJob
	for s, source := range cfg.Sources {
		for cond, name := range [2]string{condNormal, condShifted} {
			if err := os.MkdirAll(filepath.Join(dir, source, name), 0o755); err != nil {
				return nil, fmt.Errorf("simulate: create image directory: %w", err)
			}
			p[s][cond] = make([][]string, len(Classes))
		}
		for k, class := range Classes {
			for i := range cfg.ImagesPerClass {
				j := poolJob{source: source, class: class, i: i}
				for cond, name := range [2]string{condNormal, condShifted} {
					j.paths[cond] = filepath.Join(dir, source, name, class+"-"+strconv.Itoa(i)+".jpg")
					p[s][cond][k] = append(p[s][cond][k], fileURI(j.paths[cond]))
				}
				jobs = append(jobs, j)
			}
		}
	}
	return p, renderAll(cfg.Seed, jobs)
}

// fileURI builds a file:// URI with proper escaping, so a directory with
// spaces or '#' in its name still yields a URI that parses back to the path.
func fileURI(abs string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

// renderAll renders the jobs on every CPU; each job has its own random
// stream, so the pictures do not depend on scheduling.
func renderAll(seed int64, jobs []poolJob) error {
	work := make(chan poolJob)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for j := range work {
				if errs[w] == nil {
					errs[w] = renderJob(seed, j)
				}
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// renderJob renders one scene and writes whichever of its two pictures is
// missing.
func renderJob(seed int64, j poolJob) error {
	missing := [2]bool{!exists(j.paths[0]), !exists(j.paths[1])}
	if !missing[0] && !missing[1] {
		return nil
	}
	r := jobRand(seed, j, "scene")
	scene := renderScene(j.source, j.class, r)
	for cond, name := range [2]string{condNormal, condShifted} {
		if !missing[cond] {
			continue
		}
		img := develop(scene, cond == 1, jobRand(seed, j, name))
		if err := writeJPEG(j.paths[cond], img); err != nil {
			return err
		}
	}
	return nil
}

// jobRand is a random stream fixed by the seed, the scene and a purpose.
func jobRand(seed int64, j poolJob, purpose string) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", j.source, j.class, j.i, purpose)
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}

func exists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// writeJPEG writes through a temporary file and renames it into place, so a
// crash mid-write never leaves a truncated picture that a restart would skip.
func writeJPEG(path string, img image.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.jpg")
	if err != nil {
		return fmt.Errorf("simulate: write image: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := jpeg.Encode(tmp, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
		tmp.Close()
		return fmt.Errorf("simulate: encode %s: %w", path, err)
	}
	// CreateTemp makes the file private; the pictures are for other readers
	// (the embedder, a person checking the demo), so open them up.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("simulate: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("simulate: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("simulate: write %s: %w", path, err)
	}
	return nil
}
