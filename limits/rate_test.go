package limits

import (
	"errors"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Rate
		str  string
		bad  bool
	}{
		{in: "10-S", want: Rate{10, time.Second}, str: "10-S"},
		{in: "1000-s", want: Rate{1000, time.Second}, str: "1000-S"},
		{in: "6-M", want: Rate{6, time.Minute}, str: "6-M"},
		{in: "1-H", want: Rate{1, time.Hour}, str: "1-H"},
		{in: "5-D", want: Rate{5, 24 * time.Hour}, str: "5-D"},
		{in: "off", want: Rate{}, str: "off"},
		{in: "OFF", want: Rate{}, str: "off"},
		{in: "", bad: true},
		{in: "10", bad: true},
		{in: "10-", bad: true},
		{in: "-S", bad: true},
		{in: "0-S", bad: true},
		{in: "-1-S", bad: true},
		{in: "10-W", bad: true},
		{in: "10-S-S", bad: true},
		{in: "1.5-S", bad: true},
		{in: "10000000000-S", bad: true},
		{in: " 10-S", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRate(tt.in)
			if tt.bad {
				if !errors.Is(err, ErrInvalidRate) {
					t.Fatalf("ParseRate(%q) = %v, %v; want ErrInvalidRate", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.str {
				t.Fatalf("ParseRate(%q) = %+v (%s), %v; want %+v (%s)", tt.in, got, got, err, tt.want, tt.str)
			}
			if got.Off() != (tt.str == "off") {
				t.Fatalf("Off() = %v", got.Off())
			}
		})
	}
}
