//go:build linux && !amd64 && !arm64

package softdelete

const sysRenameat2 = -1
