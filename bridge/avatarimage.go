package bridge

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // decoders SetAvatar accepts
	_ "image/jpeg"
	"image/png"
)

// Bounds of the image SetAvatar accepts: its encoded size, and its pixels, checked from its
// header before it is decoded (a small file may declare a huge image).
const (
	MaxAvatarInput  = 10 << 20
	MaxAvatarPixels = 16 << 20
	avatarSide      = 96 // MSN's display picture size
)

// avatarPNG decodes a PNG, JPEG or GIF (its first frame), crops it to a centred square and
// scales it to avatarSide×avatarSide, as a PNG.
func avatarPNG(data []byte) ([]byte, error) {
	if len(data) > MaxAvatarInput {
		return nil, fmt.Errorf("%w: image of %d bytes, at most %d", ErrInvalidArgument, len(data), MaxAvatarInput)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: not a PNG, JPEG or GIF image: %v", ErrInvalidArgument, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxAvatarPixels {
		return nil, fmt.Errorf("%w: %s image of %d×%d pixels, at most %d pixels", ErrInvalidArgument, format, cfg.Width, cfg.Height, MaxAvatarPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: cannot decode %s image: %v", ErrInvalidArgument, format, err)
	}
	b := img.Bounds()
	if int64(b.Dx())*int64(b.Dy()) > MaxAvatarPixels || b.Empty() {
		return nil, fmt.Errorf("%w: image of %d×%d pixels", ErrInvalidArgument, b.Dx(), b.Dy())
	}
	out := scaleSquare(img, avatarSide)
	var buf bytes.Buffer
	if err = png.Encode(&buf, out); err != nil {
		return nil, fmt.Errorf("failed to encode display picture: %w", err)
	}
	return buf.Bytes(), nil
}

// scaleSquare crops src to its centred square and scales it to side×side, each output pixel
// the average of the source pixels it covers (or the nearest one when enlarging).
func scaleSquare(src image.Image, side int) *image.NRGBA {
	b := src.Bounds()
	n := min(b.Dx(), b.Dy())
	x0, y0 := b.Min.X+(b.Dx()-n)/2, b.Min.Y+(b.Dy()-n)/2
	dst := image.NewNRGBA(image.Rect(0, 0, side, side))
	for dy := range side {
		sy0, sy1 := y0+dy*n/side, y0+(dy+1)*n/side
		sy1 = max(sy1, sy0+1)
		for dx := range side {
			sx0, sx1 := x0+dx*n/side, x0+(dx+1)*n/side
			sx1 = max(sx1, sx0+1)
			var r, g, bl, a, cnt uint64
			for y := sy0; y < sy1; y++ {
				for x := sx0; x < sx1; x++ {
					c := color.NRGBA64Model.Convert(src.At(x, y)).(color.NRGBA64)
					// Weight colour by alpha so transparent pixels do not darken the edges.
					r += uint64(c.R) * uint64(c.A)
					g += uint64(c.G) * uint64(c.A)
					bl += uint64(c.B) * uint64(c.A)
					a += uint64(c.A)
					cnt++
				}
			}
			px := color.NRGBA{}
			if a > 0 {
				px = color.NRGBA{R: uint8(r / a >> 8), G: uint8(g / a >> 8), B: uint8(bl / a >> 8), A: uint8(a / cnt >> 8)}
			}
			dst.SetNRGBA(dx, dy, px)
		}
	}
	return dst
}
