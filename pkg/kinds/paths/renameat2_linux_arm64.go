package paths

const sysRenameat2 = 276
