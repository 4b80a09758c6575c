package simulate

import "testing"

func BenchmarkJob(b *testing.B) {
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		j := poolJob{source: "cam-1", class: Classes[i%12], i: i, paths: [2]string{dir + "/a" + Classes[i%12] + string(rune(i)) + ".jpg", dir + "/b" + string(rune(i)) + ".jpg"}}
		if err := renderJob(1, j); err != nil {
			b.Fatal(err)
		}
	}
}
