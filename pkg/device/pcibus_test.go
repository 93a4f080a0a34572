package device

import "testing"

func TestParsePCIAddress(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "00000000:19:00.0", want: "0000:19:00.0"},
		{in: "00000000:BB:00.0", want: "0000:bb:00.0"},
		{in: "3B:00.0", want: "0000:3b:00.0"},
		{in: "00010000:01:00.0", want: "10000:01:00.0"},
		{in: "", wantErr: true},
		{in: "0000:19:00", wantErr: true},
		{in: "0000:zz:00.0", wantErr: true},
		{in: "100000000:00:00.0", wantErr: true},
	}
	for _, tc := range tests {
		a, err := ParsePCIAddress(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && a.String() != tc.want) {
			t.Errorf("ParsePCIAddress(%q) = %v, %v; want %q, error %v", tc.in, a, err, tc.want, tc.wantErr)
		}
	}
}
