package schema

import "testing"

// A partitioned table holds no rows itself: its estimate is its partitions',
// at every depth; unknown (-1) while none of them was analysed.
func TestSumPartitions(t *testing.T) {
	s := &Snapshot{Tables: map[string]*Table{
		"public.e":       {Name: "e", Partitioned: true, RowEstimate: -1},
		"public.e_2026":  {Name: "e_2026", PartitionOf: "public.e", RowEstimate: 100, SizeBytes: 8192},
		"public.e_2027":  {Name: "e_2027", PartitionOf: "public.e", Partitioned: true, RowEstimate: -1},
		"public.e_2027a": {Name: "e_2027a", PartitionOf: "public.e_2027", RowEstimate: 30, SizeBytes: 100},
		"public.e_2027b": {Name: "e_2027b", PartitionOf: "public.e_2027", RowEstimate: -1, SizeBytes: 10},
		"public.f":       {Name: "f", Partitioned: true, RowEstimate: -1},
		"public.f_1":     {Name: "f_1", PartitionOf: "public.f", RowEstimate: -1},
	}}
	sumPartitions(s)
	if e := s.Tables["public.e"]; e.RowEstimate != 130 || e.SizeBytes != 8302 {
		t.Errorf("e: %d rows, %d bytes; want 130, 8302", e.RowEstimate, e.SizeBytes)
	}
	if f := s.Tables["public.f"]; f.RowEstimate != -1 {
		t.Errorf("f: %d rows, want -1 (never analysed)", f.RowEstimate)
	}
}
