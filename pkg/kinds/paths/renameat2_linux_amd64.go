package paths

const sysRenameat2 = 316
