package simulate

import (
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestScratchPool(t *testing.T) {
	start := time.Now()
	_, err := NewGenerator(DefaultConfig("/tmp/simpool"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pool in %v", time.Since(start))
	cols := [][2]string{{"cam-1", "normal"}, {"cam-2", "normal"}, {"cam-3", "normal"}, {"cam-2", "shifted"}}
	for sheet := 0; sheet < 2; sheet++ {
		out := image.NewRGBA(image.Rect(0, 0, 4*160, 6*120))
		for row := 0; row < 6; row++ {
			class := Classes[sheet*6+row]
			for ci, c := range cols {
				f, _ := os.Open(filepath.Join("/tmp/simpool", c[0], c[1], class+"-1.jpg"))
				img, err := jpeg.Decode(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				for y := 0; y < 120; y++ {
					for x := 0; x < 160; x++ {
						out.Set(ci*160+x, row*120+y, img.At(2*x, 2*y))
					}
				}
			}
		}
		f, _ := os.Create(filepath.Join("/tmp", "sheet"+string(rune('0'+sheet))+".png"))
		png.Encode(f, out)
		f.Close()
	}
}
