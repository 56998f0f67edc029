package archive

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// refModel is the recording's reference: a plain list, each (path, kind)
// kept at its first occurrence, then sorted by path and kind.
type refModel struct{ kept []Finding }

func (r *refModel) add(f Finding) {
	if !slices.ContainsFunc(r.kept, func(g Finding) bool { return g.Path == f.Path && g.Kind == f.Kind }) {
		r.kept = append(r.kept, f)
	}
}

func (r *refModel) sorted() []Finding {
	s := slices.Clone(r.kept)
	slices.SortStableFunc(s, func(a, b Finding) int { return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Kind, b.Kind)) })
	return s
}

// counts and listed as the recording promises them: exact counts per
// component and kind, the first ListedPerKind of each in path order.
func (r *refModel) summary() (counts []FindingCount, listed []Finding) {
	n := map[[2]string]int{}
	for _, f := range r.sorted() {
		k := [2]string{f.Component, f.Kind}
		n[k]++
		if n[k] <= ListedPerKind {
			listed = append(listed, f)
		}
	}
	for k, c := range n {
		counts = append(counts, FindingCount{Component: k[0], Kind: k[1], Count: c})
	}
	slices.SortFunc(counts, func(a, b FindingCount) int {
		return cmp.Or(cmp.Compare(a.Component, b.Component), cmp.Compare(a.Kind, b.Kind))
	})
	return counts, listed
}

// TestFindings_RecordMatchesReference is the property of the recording
// (findings_log.go): any sequence of findings, with repeats adjacent or
// far apart, across components, of kinds accepted or not, spilled into
// many small runs or kept in memory, with the refusal or the losses read
// in the middle and more findings after, gives exactly the reference's
// set (each path and kind once, the first one's component and words), in
// path then kind order, with exact counts, the first ListedPerKind of
// each listed, and a refusal message that names at most ListedInMessage.
func TestFindings_RecordMatchesReference(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		old := findingRunMax
		findingRunMax = rapid.SampledFrom([]int{1, 300, 4000, 1 << 20}).Draw(t, "runMax")
		defer func() { findingRunMax = old }()
		kinds := append(slices.Clone(AcceptableLosses), LossMount, LossImmutable)
		accept := rapid.SliceOfDistinct(rapid.SampledFrom(AcceptableLosses), rapid.ID).Draw(t, "accept")
		c := NewCollector(accept)
		defer c.Close()
		if rapid.Bool().Draw(t, "spool") {
			c.KeepRecords(func() (*os.File, error) {
				f, err := os.CreateTemp(dir, "spool-*")
				if err == nil {
					os.Remove(f.Name())
				}
				return f, err
			})
		}
		var refused, lost refModel
		paths := rapid.IntRange(1, 80).Draw(t, "paths")
		ops := rapid.IntRange(0, 400).Draw(t, "ops")
		check := func() {
			err := c.Err("inst")
			counts, listed := refused.summary()
			if len(refused.kept) == 0 {
				require.NoError(t, err)
			} else {
				fe, ok := err.(*FindingsError)
				require.True(t, ok, "%v", err)
				require.Equal(t, len(refused.kept), fe.Total)
				require.Equal(t, counts, fe.Counts)
				require.Equal(t, listed, fe.Findings)
				msg := fe.Error()
				require.LessOrEqual(t, strings.Count(msg, " is "), ListedInMessage)
				if more := fe.Total - min(len(fe.Findings), ListedInMessage); more > 0 {
					require.Contains(t, msg, fmt.Sprintf("; and %d more", more))
				}
				for _, k := range counts {
					if k.Kind != LossMount && k.Kind != LossImmutable {
						require.Contains(t, fe.Hint(), k.Kind)
					}
				}
			}
			counts, listed = lost.summary()
			gotCounts, total := c.LossCounts()
			require.Equal(t, len(lost.kept), total)
			if len(counts) == 0 {
				require.Empty(t, gotCounts)
				require.Empty(t, c.Losses())
			} else {
				require.Equal(t, counts, gotCounts)
				require.Equal(t, listed, c.Losses())
			}
			var all []Finding
			require.NoError(t, c.eachLoss(func(f Finding) error { all = append(all, f); return nil }))
			require.Equal(t, lost.sorted(), all)
		}
		for i := range ops {
			if rapid.IntRange(0, 50).Draw(t, "finish") == 0 {
				check()
			}
			f := Finding{
				Component: rapid.SampledFrom([]string{"data", "logs", "config"}).Draw(t, "component"),
				Path:      fmt.Sprintf("/srv/p%03d", rapid.IntRange(0, paths-1).Draw(t, "path")),
				Kind:      rapid.SampledFrom(kinds).Draw(t, "kind"),
				What:      fmt.Sprintf("words %d", i),
			}
			if c.accept[f.Kind] {
				lost.add(f)
			} else {
				refused.add(f)
			}
			c.record(f)
		}
		check()
	})
}

// TestFindings_ManifestStreamsLosses checks that the streamed manifest
// (encodeManifest with a losses stream) is byte for byte json.Marshal of
// the same manifest holding its losses, with none, one or many (the
// "losses" key omitted when empty, as format v1 wrote it), and that the
// streaming decoder counts them without keeping them while
// DecodeManifest keeps them all.
func TestFindings_ManifestStreamsLosses(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 40).Draw(t, "losses")
		var losses []Finding
		for i := range n {
			losses = append(losses, Finding{Component: "data", Path: fmt.Sprintf("/srv/%s\"%d", rapid.StringN(0, 8, -1).Draw(t, "name"), i),
				Kind: rapid.SampledFrom(AcceptableLosses).Draw(t, "kind"), What: "x"})
		}
		m := &Manifest{Format: Format, ID: "id", Instance: "inst", Reason: rapid.String().Draw(t, "reason"),
			CreatedAt: time.Unix(1, 0).UTC(), Files: []FileEntry{}, Databases: []DumpEntry{},
			AcceptLosses:     rapid.SliceOfN(rapid.SampledFrom(AcceptableLosses), 0, 2).Draw(t, "accept"),
			RetentionRecords: rapid.Bool().Draw(t, "records")}
		full := *m
		full.Losses = losses
		want, err := json.Marshal(full)
		require.NoError(t, err)
		streamed := *m
		streamed.Losses = []Finding{{Path: "ignored"}}
		streamed.lossSeq = func(fn func(Finding) error) error {
			for _, l := range losses {
				if err := fn(l); err != nil {
					return err
				}
			}
			return nil
		}
		var got bytes.Buffer
		require.NoError(t, encodeManifest(&got, &streamed, sliceSeq(nil)))
		require.Equal(t, string(want), got.String())

		d := newManifestDecoder(bytes.NewReader(got.Bytes()))
		for {
			_, err := d.next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.Equal(t, n, d.losses)
		require.Empty(t, d.m.Losses)
		back, err := DecodeManifest(bytes.NewReader(got.Bytes()))
		require.NoError(t, err)
		require.Equal(t, len(losses), len(back.Losses))
		if n > 0 {
			require.Equal(t, losses, back.Losses)
		}
	})
}

// TestFindings_SpillFailureRefuses: when the findings cannot be spooled (a
// full disk), Err says so instead of a partial refusal or none, and the
// losses cannot be written into an archive either.
func TestFindings_SpillFailureRefuses(t *testing.T) {
	old := findingRunMax
	findingRunMax = 100
	defer func() { findingRunMax = old }()
	full := errors.New("no space left on device")
	for _, accept := range [][]string{nil, {LossXattr}} {
		c := NewCollector(accept)
		c.KeepRecords(func() (*os.File, error) { return nil, full })
		for i := range 50 {
			c.record(Finding{Component: "data", Path: fmt.Sprintf("/srv/f%02d", i), Kind: LossXattr, What: "an attribute"})
		}
		err := c.Err("inst")
		require.ErrorIs(t, err, full)
		var fe *FindingsError
		require.False(t, errors.As(err, &fe), "no partial refusal")
		if accept != nil {
			_, werr := c.Write(context.Background(), nil, "k", &Manifest{}, nil, nil, t.TempDir(), nil)
			require.ErrorIs(t, werr, full)
		}
		c.Close()
	}
}
