package archive

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnescapeMountinfo(t *testing.T) {
	assert.Equal(t, "/mnt/a b\tc\\d", unescapeMount(`/mnt/a\040b\011c\134d`))
	assert.Equal(t, `/mnt/x\04`, unescapeMount(`/mnt/x\04`))
	assert.Equal(t, "/plain", unescapeMount("/plain"))
}
