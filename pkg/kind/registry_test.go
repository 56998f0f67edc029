package kind

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stub is a kind that only has a type: enough for the registry.
type stub struct {
	Kind
	typ string
}

func (s stub) Type() string { return s.typ }

func TestRegister_RefusesDuplicateAndEmptyTypes(t *testing.T) {
	typ := "registry_test_" + strings.ReplaceAll(t.Name(), "/", "_")
	require.NoError(t, register(stub{typ: typ}))
	t.Cleanup(func() {
		registryMu.Lock()
		delete(registry, typ)
		registryMu.Unlock()
	})
	err := register(stub{typ: typ})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `type "`+typ+`" registered twice`)
	assert.Panics(t, func() { Register(stub{typ: typ}) }, "Register panics on a duplicate")
	assert.Error(t, register(stub{typ: ""}), "an empty type is refused")

	k, ok := Lookup(typ)
	require.True(t, ok)
	assert.Equal(t, typ, k.Type(), "the first registration stays")
	assert.Contains(t, Types(), typ)
	_, ok = Lookup("registry_test_nosuch")
	assert.False(t, ok)
}

func TestScan_CacheLoadsOnceAndKeepsNoFailure(t *testing.T) {
	s := &Scan{}
	type key struct{}
	loads := 0
	for range 3 {
		v, err := s.Cache(key{}, func() (any, error) { loads++; return 42, nil })
		require.NoError(t, err)
		assert.Equal(t, 42, v)
	}
	assert.Equal(t, 1, loads)
	type failing struct{}
	_, err := s.Cache(failing{}, func() (any, error) { return nil, io.ErrUnexpectedEOF })
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	v, err := s.Cache(failing{}, func() (any, error) { return "now", nil })
	require.NoError(t, err)
	assert.Equal(t, "now", v, "a failed load is not kept")
	closed := []int{}
	s.OnClose(func() { closed = append(closed, 1) })
	s.OnClose(func() { closed = append(closed, 2) })
	s.Close()
	assert.Equal(t, []int{2, 1}, closed)
}

func TestEnv_WithCopies(t *testing.T) {
	a := Env{}.With("x", 1)
	b := a.With("y", 2)
	assert.Nil(t, a.Setting("y"), "With never changes its receiver")
	assert.Equal(t, 1, b.Setting("x"))
	assert.Equal(t, 2, b.Setting("y"))
}

func TestTemplate_ExpandMatch(t *testing.T) {
	tp := NewTemplate("app_{name}_db")
	assert.Equal(t, "app_acme_db", tp.Expand("acme"))
	n, ok := tp.Match("app_acme_db")
	assert.True(t, ok)
	assert.Equal(t, "acme", n)
	_, ok = tp.Match("app__db")
	assert.False(t, ok, "an empty name never matches")
}
