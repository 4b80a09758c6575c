package embed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// pngHeader is a PNG whose IHDR claims w x h RGB pixels and which ends right
// after it: a decompression bomb's header without the bomb.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32([]byte("IHDR"), w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, no interlace
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)-4))
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(ihdr))
	return b.Bytes()
}

// jpegWithSize re-labels a real JPEG's SOF0 frame as w x h.
func jpegWithSize(t *testing.T, w, h uint16) []byte {
	data := encodeJPEG(t, scene(16, 16, 1), 80)
	i := bytes.Index(data, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	binary.BigEndian.PutUint16(data[i+5:], h)
	binary.BigEndian.PutUint16(data[i+7:], w)
	return data
}

// webpVP8X is a WebP whose extended header claims w x h.
func webpVP8X(w, h uint32) []byte {
	chunk := []byte("VP8X\x0a\x00\x00\x00\x00\x00\x00\x00")
	chunk = append(chunk, byte(w-1), byte((w-1)>>8), byte((w-1)>>16), byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	out := []byte("RIFF")
	out = binary.LittleEndian.AppendUint32(out, uint32(4+len(chunk)))
	return append(append(out, "WEBP"...), chunk...)
}

func TestDecodeFormats(t *testing.T) {
	img := scene(40, 30, 1)
	cases := map[string][]byte{"png": encodePNG(t, img), "jpeg": encodeJPEG(t, img, 90)}
	for _, f := range []string{"tiny-lossy.webp", "tiny-lossless-alpha.webp"} {
		// Made by python3-pil from a 24x16 gradient (lossy q80; lossless RGBA).
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		cases[f] = data
	}
	for name, data := range cases {
		got, err := Decode(data, Limits{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		t.Logf("%s -> %T %v", name, got, got.Bounds())
		if b := got.Bounds(); b.Dx() < 16 || b.Dy() < 16 {
			t.Errorf("%s: bounds %v", name, b)
		}
		Preprocess(got, DefaultPreprocess(), nil) // every decoder output must preprocess
	}
}

func TestDecodeRefusesBombsBeforeDecoding(t *testing.T) {
	cases := map[string][]byte{
		"png 100000x100000":  pngHeader(100000, 100000),
		"png 20000x10":       pngHeader(20000, 10), // one side too long
		"jpeg 60000x60000":   jpegWithSize(t, 60000, 60000),
		"jpeg 10000x10000":   jpegWithSize(t, 10000, 10000), // 100 MP: each side fine, area not
		"webp 40000x40000":   webpVP8X(40000, 40000),
		"png 100x100 > 5000": encodePNG(t, scene(100, 100, 1)),
	}
	for name, data := range cases {
		lim := Limits{}
		if name == "png 100x100 > 5000" {
			lim.MaxPixels = 5000
		}
		allocs := testing.AllocsPerRun(1, func() { Decode(data, lim) })
		_, err := Decode(data, lim)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want ErrTooLarge", name, err)
		}
		if allocs > 100 {
			t.Errorf("%s: %v allocations, header check should not decode", name, allocs)
		}
		if Reason(err) != "too_large" {
			t.Errorf("%s: Reason %q", name, Reason(err))
		}
	}
	big := make([]byte, 1001)
	copy(big, encodePNG(t, scene(4, 4, 1)))
	if _, err := Decode(big, Limits{MaxBytes: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxBytes: got %v", err)
	}
}

func TestDecodeClassifiesBadInput(t *testing.T) {
	good := encodePNG(t, scene(64, 64, 1))
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"jpeg magic then junk", append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte{0x42}, 200)...), ErrCorrupt},
		{"truncated png", good[:len(good)/2], ErrCorrupt},
		{"truncated jpeg", encodeJPEG(t, scene(64, 64, 1), 90)[:300], ErrCorrupt},
		{"png header only", pngHeader(10, 10), ErrCorrupt},
		{"zero width png", pngHeader(0, 10), ErrCorrupt},
		{"riff but junk", append(webpVP8X(10, 10)[:12], "VP8 junk"...), ErrCorrupt},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), ErrUnsupportedFormat},
		{"text", []byte("hello, world"), ErrUnsupportedFormat},
	}
	for _, c := range cases {
		img, err := Decode(c.data, Limits{})
		if !errors.Is(err, c.want) || img != nil {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestReason(t *testing.T) {
	cases := map[string]error{
		"":                   nil,
		"too_large":          fmt.Errorf("x: %w", ErrTooLarge),
		"unsupported_format": ErrUnsupportedFormat,
		"corrupt":            fmt.Errorf("a: %w: %w", ErrCorrupt, errors.New("b")),
		"forbidden":          ErrForbidden,
		"not_found":          &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist},
		"canceled":           context.DeadlineExceeded,
		"other":              errors.New("boom"),
	}
	for want, err := range cases {
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}

// FuzzDecode makes sure no input crashes Decode or slips past its limits.
func FuzzDecode(f *testing.F) {
	f.Add(encodePNG(f, scene(8, 8, 1)))
	f.Add(encodeJPEG(f, scene(8, 8, 1), 80))
	f.Add(pngHeader(100000, 100000))
	f.Add(webpVP8X(20, 20))
	lim := Limits{MaxPixels: 1 << 16, MaxSide: 512}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data, lim)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if b := img.Bounds(); b.Dx()*b.Dy() > lim.MaxPixels || b.Dx() > lim.MaxSide || b.Dy() > lim.MaxSide {
			t.Fatalf("decoded %v past limits", b)
		}
	})
}
