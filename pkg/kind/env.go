package kind

import (
	"fmt"
	"maps"
	"sync"
)

// Env is what a kind needs from its surroundings: each kind's connection
// settings (a PostgreSQL server, a MariaDB server, the systemd directory),
// keyed by Kind.Type and filled by whoever builds the environment
// (internal/modutil from module parameters, tests directly). A new kind
// adds its settings here without changing Kind.
type Env struct {
	Settings map[string]any
}

// Setting returns the settings stored for a kind type, nil when none.
func (e Env) Setting(typ string) any { return e.Settings[typ] }

// With returns a copy of e with v stored for typ.
func (e Env) With(typ string, v any) Env {
	s := maps.Clone(e.Settings)
	if s == nil {
		s = map[string]any{}
	}
	s[typ] = v
	return Env{Settings: s}
}

// Scan is one discovery run: its environment, whether sizes are wanted,
// and what kinds list once per run (a database list, the unit files).
// Cache, OnClose and Close are safe for concurrent use.
type Scan struct {
	Env Env
	// Sizes asks State for sizes and the latest modification inside a
	// component (a walk); without it only the top is looked at.
	Sizes bool

	mu      sync.Mutex
	cache   map[any]any
	closers []func()
}

// Cache returns the value stored under key, loading it once with load.
// A failed load is not stored. Keys are the caller's own unexported types.
func (s *Scan) Cache(key any, load func() (any, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.cache[key]; ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	if s.cache == nil {
		s.cache = map[any]any{}
	}
	s.cache[key] = v
	return v, nil
}

// OnClose registers f to run when the scan ends (closing a connection).
func (s *Scan) OnClose(f func()) {
	s.mu.Lock()
	s.closers = append(s.closers, f)
	s.mu.Unlock()
}

// Close runs what OnClose registered, last first.
func (s *Scan) Close() {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

// NotesSetting is the setting under which a caller passes a func(string)
// that takes the notes a kind has for the result (something restored
// differently from the backup, or left out); see Env.Note.
const NotesSetting = "fleetsafe.notes"

// Note hands a note to the caller's NotesSetting function, if any.
func (e Env) Note(format string, args ...any) {
	if f, ok := e.Setting(NotesSetting).(func(string)); ok {
		f(fmt.Sprintf(format, args...))
	}
}
