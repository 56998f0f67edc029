package modutil

import (
	"context"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
)

type progressKey struct{}

// WithProgress returns ctx carrying fn, the command line's progress
// display, for the modules to put in the library's requests (Progress).
func WithProgress(ctx context.Context, fn func(archive.Progress)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// Progress is the progress callback ctx carries (WithProgress), or nil: a
// module run by Ansible reports none.
func Progress(ctx context.Context) func(archive.Progress) {
	fn, _ := ctx.Value(progressKey{}).(func(archive.Progress))
	return fn
}
