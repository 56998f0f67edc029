package pgdump

import "testing"

// TestFilterList: only the lines of the entries named go, each must be
// found once, and a tag that looks like an id is not taken for one.
func TestFilterList(t *testing.T) {
	list := ";\n; Archive created at x\n;\n215; 1259 16390 TABLE public t acme\n3345; 826 16393 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES acme\n3346; 0 0 COMMENT - 3345; x acme\n"
	got, err := filterList(list, []int64{3345})
	if err != nil {
		t.Fatal(err)
	}
	want := ";\n; Archive created at x\n;\n215; 1259 16390 TABLE public t acme\n3346; 0 0 COMMENT - 3345; x acme\n"
	if got != want {
		t.Errorf("filtered list:\n%s\nwant:\n%s", got, want)
	}
	if _, err := filterList(list, []int64{9}); err == nil {
		t.Error("an entry missing from the list is not an error")
	}
	if _, err := filterList(list+"3345; again\n", []int64{3345}); err == nil {
		t.Error("an entry listed twice is not an error")
	}
}
