//go:build linux && !amd64 && !arm64

package paths

const sysRenameat2 = -1
