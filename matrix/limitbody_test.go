package matrix

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLimitBody(t *testing.T) {
	var read int
	h := limitBody(10)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		read = len(b)
		if err != nil {
			http.Error(w, "too large", http.StatusBadRequest)
		}
	}))
	for _, tc := range []struct {
		name     string
		body     string
		length   int64
		wantCode int
	}{
		{"small", "0123456789", 10, http.StatusOK},
		{"declared too large", strings.Repeat("x", 11), 11, http.StatusRequestEntityTooLarge},
		{"undeclared too large", strings.Repeat("x", 1000), -1, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read = 0
			req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/1", strings.NewReader(tc.body))
			req.ContentLength = tc.length
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if read > 10 {
				t.Fatalf("handler read %d bytes past the limit", read)
			}
		})
	}
}
