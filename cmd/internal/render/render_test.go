package render

import "testing"

func TestKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"order-1":        "order-1",
		"заказ-7":        "заказ-7",
		"key with space": `"key with space"`,
		"tab\there":      `"tab\there"`,
		`quote"d`:        `"quote\"d"`,
		"nl\n":           `"nl\n"`,
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %s, want %s", in, got, want)
		}
	}
}
