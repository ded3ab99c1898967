package msntest

import "testing"

func TestQRYVectors(t *testing.T) {
	const id90, key90 = "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL"
	tests := []struct {
		chl, id, key string
		pad          bool
		want         string
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
	}
	for _, tt := range tests {
		if got := qryMSNP11(tt.chl, tt.id, tt.key, tt.pad); got != tt.want {
			t.Errorf("qryMSNP11(%s, %s, pad=%v) = %s, want %s", tt.chl, tt.id, tt.pad, got, tt.want)
		}
	}
	if got := qryBasic("12345678901234567890", "Q1P7W2E4J9R8U3S5"); got != "8ba1bb9d6dbf624fee31a2053af5fdd0" {
		t.Errorf("qryBasic = %s", got)
	}
}

func TestChallengeCheck(t *testing.T) {
	tests := []struct {
		name  string
		right bool
	}{
		{"right answer", true},
		{"wrong answer", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := twoFriends(t, Options{})
			a := online(t, s, "alice@example.com", "alicepw")
			chl, err := s.SendChallenge("alice@example.com")
			if err != nil {
				t.Fatal(err)
			}
			got := a.untilLine("CHL 0 ")
			if got.Arg(1) != chl || len(chl) != 20 {
				t.Fatalf("CHL %q, challenge %q", got.String(), chl)
			}
			ans := qryMSNP11(chl, "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL", false)
			if !tt.right {
				ans = "0123456789abcdef0123456789abcdef"
			}
			a.sendPayload("QRY 50 PROD0090YUAUV{2B", ans)
			if tt.right {
				a.expect("QRY 50")
				a.send("PNG")
				a.expect("QNG 60")
			} else {
				a.expect("540 50")
				a.expectClosed()
			}
			res := s.ChallengeResults()
			if len(res) != 1 || res[0].OK != tt.right || res[0].Challenge != chl || res[0].Handle != "alice@example.com" {
				t.Fatalf("results %+v", res)
			}
		})
	}
}

func TestSendCHLOption(t *testing.T) {
	s := newServer(t, Options{SendCHL: true})
	escargotAccounts(t, s)
	c := dialRaw(t, s.NSAddr())
	c.send("VER 1 MSNP10 CVR0")
	c.expect("VER 1 MSNP10")
	c.send("USR 2 TWN I alice@example.com")
	c.expectName("USR")
	tk, err := s.IssueTicket("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	c.send("USR 3 TWN S " + tk)
	chl := c.untilLine("CHL 0 ").Arg(1)
	// MSNP10: the basic MD5 method.
	c.sendPayload("QRY 4 msmsgs@msnmsgr.com", qryBasic(chl, "Q1P7W2E4J9R8U3S5"))
	c.expect("QRY 4")
}
