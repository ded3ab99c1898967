package msn

import "testing"

func TestChallengeMSNP11Vectors(t *testing.T) {
	const id90, key90 = ProductIDMSNP11, ProductKeyMSNP11
	tests := []struct {
		challenge, id, key string
		padAlways          bool
		want               string
	}{
		{"22210219642164014968", id90, key90, false, "85ecb0db8f32113df79ce0892b9a102c"},
		{"36819795137093047918", id90, key90, false, "e7ad3cb09d3e9e4e7c720175984809e9"},
		{"21948129323261853323", id90, key90, false, "59bcf63ed21f44906c3d3e121ddbed65"},
		{"41525959199453244913", id90, key90, false, "dcb8ff529e4dd12cc43389851128d2db"},
		{"31744216663023315951", id90, key90, false, "d15553d0ea89c9f63bbb98a208fa4235"},
		{"14494180082586329971", id90, key90, false, "4e11d4cd56a65bdf04f60aa133db7ebc"},
		{"12345678901234567890", id90, key90, false, "a57a33d300de0b8c4d3c074d423e25fb"},
		{"22210219642164014968", "PROD0101{0RM?UBW", "CFHUR$52U_{VIX5T", false, "64812169fe9717715f03c678fa4ab938"},
		{"11533365622852247127", "PROD0113H11T8$X_", "RG@XY*28Q5QHS%Q5", false, "f086d1ded067186deca8dba2231602cf"},
		{"237191752526424888127371168", "PROD0113H11T8$X_", "RG@XY*28Q5QHS%Q5", false, "65b6b623c649c25629af048d34066040"},
		{"123456789012345678901234", id90, key90, false, "cfd1a4febba8ec8488adc3c0916fb4fa"},
		{"123456789012345678901234", id90, key90, true, "948035b948c0318ad3fc5287620769f4"},
		// Both padding variants agree for the usual 20-digit challenges.
		{"22210219642164014968", id90, key90, true, "85ecb0db8f32113df79ce0892b9a102c"},
	}
	for _, tt := range tests {
		got := ChallengeMSNP11(tt.challenge, tt.id, tt.key, tt.padAlways)
		if got != tt.want {
			t.Errorf("ChallengeMSNP11(%q, %q, padAlways=%v) = %s, want %s", tt.challenge, tt.id, tt.padAlways, got, tt.want)
		}
	}
}

func TestChallengeMD5Vector(t *testing.T) {
	if got, want := ChallengeMD5("12345678901234567890", ProductKeyMSNP10), "8ba1bb9d6dbf624fee31a2053af5fdd0"; got != want {
		t.Fatalf("ChallengeMD5 = %s, want %s", got, want)
	}
}

func TestChallengeOddInputs(t *testing.T) {
	for _, c := range []string{"", "x", "\xff\xfe", "0", string(make([]byte, 1000))} {
		if got := ChallengeMSNP11(c, ProductIDMSNP11, ProductKeyMSNP11, false); len(got) != 32 {
			t.Errorf("ChallengeMSNP11(%q) = %q, want 32 hex digits", c, got)
		}
	}
}

func FuzzChallengeMSNP11(f *testing.F) {
	f.Add("22210219642164014968", false)
	f.Add("123456789012345678901234", true)
	f.Fuzz(func(t *testing.T, c string, pad bool) {
		if got := ChallengeMSNP11(c, ProductIDMSNP11, ProductKeyMSNP11, pad); len(got) != 32 {
			t.Fatalf("got %q", got)
		}
	})
}
