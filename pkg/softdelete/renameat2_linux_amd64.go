package softdelete

const sysRenameat2 = 316
