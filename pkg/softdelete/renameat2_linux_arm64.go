package softdelete

const sysRenameat2 = 276
