#!/usr/bin/env python3
"""The demo's check after the recovery: every restored component is
byte-identical to the backup it was restored from.

  verify_recovered.py <recover report JSON> <expected instance count>

Directories: the backup is extracted with GNU tar into a scratch directory
and both trees are compared entry by entry (path, type, mode, owner,
mtime, size, link target, sha256 of content). Databases: the backup's
pg_restore script and a pg_dump of the restored database are compared,
comment lines and the random \\restrict keys aside. Prints one line per instance and exits 1 on any
difference."""
import hashlib, json, os, stat, subprocess, sys, tempfile


def tree(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            row = [stat.filemode(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)]
            if stat.S_ISLNK(st.st_mode):
                row.append(os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                with open(p, 'rb') as f:
                    row += [st.st_size, hashlib.sha256(f.read()).hexdigest()]
            out[rel] = row
    st = os.lstat(root)
    out['.'] = [stat.filemode(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)]
    return out


def sql(cmd):
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    # Comments and the random \\restrict keys of newer pg_dump differ per run.
    return [l for l in text.splitlines()
            if l and not l.startswith('--') and not l.startswith(('\\restrict ', '\\unrestrict '))]


def same_dir(backup, live):
    with tempfile.TemporaryDirectory(prefix='fleetsafe-demo-check-') as tmp:
        subprocess.run(['tar', '-C', tmp, '--same-owner', '-xpf', backup], check=True)
        got = os.path.join(tmp, os.path.basename(live))
        if not os.path.isdir(got):
            return f'{backup} does not hold {os.path.basename(live)}/'
        a, b = tree(got), tree(live)
        if a != b:
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            return f'{live} differs from {backup} at {diff[:3]}'
        return None


def same_db(backup, database):
    a = sql(['pg_restore', '-f', '-', backup])
    b = sql(['pg_dump', '-h', '/var/run/postgresql', '-d', database])
    if a != b:
        return f'database {database} differs from {backup}'
    return None


def main():
    rows = json.load(open(sys.argv[1]))
    want = int(sys.argv[2])
    bad = 0
    for r in sorted(rows, key=lambda r: (r['host'], r['instance'])):
        problems, parts = [], []
        if r['failed']:
            problems.append('not fully restored: ' + r['msg'])
        for c in r['recovery']:
            if c['status'] != 'restored':
                continue
            b = c['backup']['path']
            if c['type'] == 'dir':
                p = same_dir(b, c['locator'])
            elif c['type'] == 'postgresql':
                p = same_db(b, c['locator'])
            else:
                p = f"component {c['component']}: no check for type {c['type']}"
            parts.append(f"{c['component']}={os.path.basename(b)}")
            if p:
                problems.append(p)
        status = 'identical' if not problems else 'DIFFERS: ' + '; '.join(problems)
        print(f"   {r['host']:<10} {r['instance']:<10} {status:<10} {' '.join(parts)}")
        bad += bool(problems)
    if len(rows) != want:
        print(f'   !! {len(rows)} instances recovered, {want} expected')
        return 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
