package embed

import (
	"encoding/binary"
	"image"
)

// jpegOrientation returns the EXIF orientation (1..8) stored in a JPEG's APP1
// segment, or 1 when there is none or it cannot be read. Cameras store
// portrait shots as landscape pixels plus this tag; PIL's exif_transpose,
// which transformers' load_image applies, turns them upright, and so must we.
// Only the markers before the first scan are read, each bounds-checked.
func jpegOrientation(data []byte) int {
	if len(data) < 4 || data[0] != 0xff || data[1] != 0xd8 {
		return 1
	}
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xff {
			return 1
		}
		marker := data[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0x01:
			i += 2 // standalone markers carry no length
			continue
		case marker == 0xda || marker == 0xd9: // start of scan, end of image
			return 1
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return 1
		}
		seg := data[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := tiffOrientation(seg[6:]); o != 0 {
				return o
			}
		}
		i += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 from IFD0 of a TIFF structure; 0 if absent.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 0
	}
	count := int(bo.Uint16(t[off:]))
	for k := range count {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		// SHORT (type 3), count 1: the value sits in the first 2 bytes.
		if bo.Uint16(t[e+2:]) != 3 || bo.Uint32(t[e+4:]) != 1 {
			return 0
		}
		if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}

// orient returns img turned upright for EXIF orientation o, as PIL's
// exif_transpose does (2 mirror, 3 rotate 180, 4 flip, 5 transpose,
// 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise).
// Pixels are read with the same row readers as Preprocess, so colour
// conversion is identical with and without the tag.
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	read := rowReader(img)
	r, g, bl := make([]uint8, w), make([]uint8, w), make([]uint8, w)
	for y := range h {
		read(y, 0, w, r, g, bl)
		for x := range w {
			dx, dy := orientedXY(o, x, y, w, h)
			p := dst.Pix[dy*dst.Stride+4*dx : dy*dst.Stride+4*dx+4 : dy*dst.Stride+4*dx+4]
			p[0], p[1], p[2], p[3] = r[x], g[x], bl[x], 0xff
		}
	}
	return dst
}

// orientedXY maps source pixel (x, y) of a w×h image to its upright position.
func orientedXY(o, x, y, w, h int) (int, int) {
	switch o {
	case 2:
		return w - 1 - x, y
	case 3:
		return w - 1 - x, h - 1 - y
	case 4:
		return x, h - 1 - y
	case 5:
		return y, x
	case 6:
		return h - 1 - y, x
	case 7:
		return h - 1 - y, w - 1 - x
	case 8:
		return y, w - 1 - x
	}
	return x, y
}

// cmykRows converts CMYK exactly as PIL's cmyk2rgb does:
// R = (255-K) - (C·(255-K))/255 with PIL's rounding division by 255.
func cmykRows(m *image.CMYK) rowFunc {
	return func(y, x0, x1 int, r, g, b []uint8) {
		src := m.Pix[y*m.Stride+4*x0 : y*m.Stride+4*x1]
		r, g, b = r[:len(src)/4], g[:len(src)/4], b[:len(src)/4]
		for i := range r {
			p := src[4*i : 4*i+4 : 4*i+4]
			nk := 255 - int32(p[3])
			r[i] = clip255(nk - muldiv255(int32(p[0]), nk))
			g[i] = clip255(nk - muldiv255(int32(p[1]), nk))
			b[i] = clip255(nk - muldiv255(int32(p[2]), nk))
		}
	}
}

func muldiv255(a, b int32) int32 {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func clip255(v int32) uint8 {
	return uint8(max(0, min(255, v)))
}
