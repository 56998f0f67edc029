package archive

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// RunbookSuffix names the plain copy of RESTORE.md that an object store
// holds beside each archive (and its .sha256 sidecar), for the day the
// host that wrote it is gone: it says how to fetch the archive with an S3
// client alone. It never holds a secret, and stays plain when the archive
// is encrypted.
const RunbookSuffix = ".RESTORE.md"

// fetchDirPrefix is where RESTORE.md's first block copies an archive from
// object storage: /var/tmp/fleetsafe-<tag>.
const fetchDirPrefix = "/var/tmp/fleetsafe-"

// encryptedFetchDir is the subdirectory of the fetch directory where
// RESTORE.md's block 0 copies an encrypted archive as stored, with its
// sidecar (over the ciphertext), before block 1 checks and decrypts it.
const encryptedFetchDir = "encrypted"

// identityPlaceholder stands for the operator's age identity file.
const identityPlaceholder = "<IDENTITY_FILE>"

// storeFetch says how RESTORE.md fetches an archive that lives in object
// storage.
type storeFetch struct {
	url       string // s3://bucket/prefix/name/file.tar.zst
	endpoint  string // the server's URL; "" for AWS's own
	encrypted bool
	sha256    string // the archive's, as its sidecar records it ("" unknown)
}

// storeRunbook returns the plain RESTORE.md that a store which is not a
// directory of this host keeps beside the archive under key, or nil for
// a directory store (the runbook inside the archive names its path).
func storeRunbook(st store.Store, key, digest string, m *Manifest) []byte {
	if _, local := StoreDir(st); local {
		return nil
	}
	loc := st.Location(key)
	if !strings.HasPrefix(loc, "s3://") {
		return nil
	}
	f := &storeFetch{url: loc, sha256: digest}
	if e, ok := st.(interface{ Endpoint() string }); ok {
		f.endpoint = e.Endpoint()
	}
	if e, ok := st.(interface{ Encrypting() bool }); ok {
		f.encrypted = e.Encrypting()
	}
	return runbook(m, fetchDirPrefix+runbookTag(m.ID)+"/"+path.Base(key), f)
}

// putStoreRunbook stores RESTORE.md beside the archive under key, whose
// sidecar records digest, when the store is object storage.
func putStoreRunbook(ctx context.Context, st store.Store, key, digest string, m *Manifest) error {
	md := storeRunbook(st, key, digest, m)
	if md == nil {
		return nil
	}
	if err := st.Put(ctx, key+RunbookSuffix, md); err != nil {
		return fmt.Errorf("store RESTORE.md beside the archive: %w", err)
	}
	return nil
}

// write explains and prints block 0: the archive and its sidecar copied
// from the store into dir (an encrypted one as stored, into dir/encrypted,
// for block 1 to check and decrypt: writeCheck).
func (f *storeFetch) write(b *strings.Builder, archivePath, tag string) {
	dir := path.Dir(archivePath)
	name := path.Base(archivePath)
	aws := "aws"
	if f.endpoint != "" {
		aws += " --endpoint-url " + shellQuote(f.endpoint)
	}
	fmt.Fprintf(b, "## 0. Fetch the archive from the store\n\n"+
		"The archive lives in object storage, `%s`, with its `%s` file and this RESTORE.md beside it. "+
		"The block below copies the archive and its `%s` file into `%s` on this host with the AWS CLI "+
		"(`aws`): that directory needs the archive's size free, and the block refuses when it exists "+
		"(remove it first). No credential is written here: export `AWS_ACCESS_KEY_ID` and "+
		"`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION` when needed) of a key "+
		"that may read the bucket before running it, or add `--profile <name>` after `aws`. "+
		"With MinIO's client instead, `mc cp <alias>/%s <dir>/` fetches each object.\n\n",
		oneLine(f.url), sidecar.Suffix, sidecar.Suffix, oneLine(dir), oneLine(strings.TrimPrefix(f.url, "s3://")))
	cp := func(from, to string) string {
		return aws + " s3 cp --only-show-errors " + shellQuote(from) + " " + shellQuote(to)
	}
	if f.encrypted {
		enc := dir + "/" + encryptedFetchDir
		fmt.Fprintf(b, "```sh\nmkdir -m 0700 %s %s && %s && %s\n```\n\n", shellQuote(dir), shellQuote(enc),
			cp(f.url+sidecar.Suffix, enc+"/"+name+sidecar.Suffix), cp(f.url, enc+"/"+name))
		fmt.Fprintf(b, "The archive is encrypted with age: the block copies it as the store holds it into `%s/`, "+
			"with its `%s` file, which is over the encrypted archive; block 1 checks it (no key needed) and "+
			"decrypts it into `%s`. Until then that directory needs twice the archive's size free.\n\n",
			oneLine(enc), sidecar.Suffix, oneLine(dir))
	} else {
		fmt.Fprintf(b, "```sh\nmkdir -m 0700 %s && %s && %s\n```\n\n", shellQuote(dir),
			cp(f.url+sidecar.Suffix, dir+"/"+name+sidecar.Suffix), cp(f.url, archivePath))
	}
	fmt.Fprintf(b, "The blocks below read the archive from `%s`; remove that directory once the instance "+
		"is back (staging names below use the tag `%s`).\n\n", oneLine(dir), tag)
	f.writeVersions(b, aws, name)
}

// writeVersions explains how to pick, in a versioned bucket, the versions
// fleetsafe wrote when others were put over them.
func (f *storeFetch) writeVersions(b *strings.Builder, aws, name string) {
	if f.sha256 == "" {
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(f.url, "s3://"), "/")
	fmt.Fprintf(b, "In a versioned bucket (Object Lock) nothing is ever replaced: anyone allowed to write in it "+
		"can put a new version over the archive, its `%s` file or this RESTORE.md, and `aws s3 cp` copies the "+
		"newest one, while the version fleetsafe wrote stays in the bucket, intact (and locked). The archive "+
		"fleetsafe wrote has the sha256 `%s`, which its `%s` file and the deletion's tombstone "+
		"(`archive_sha256`) record. When block 1 does not print OK, or to check before you start, list the "+
		"versions of the three objects (a `DeleteMarker` holds nothing): `%s s3api list-object-versions --bucket %s "+
		"--prefix %s`. Then fetch, in place of what block 0 copied, the archive's version whose `sha256sum` is `%s` "+
		"and the `%s` version that records it, each by its `VersionId`: `%s s3api get-object --bucket %s --key %s "+
		"--version-id <VersionId> <file>`. A RESTORE.md put over this one can say anything: the one fleetsafe "+
		"wrote is the oldest version of `%s%s`. fleetsafe's own restore does this itself and names the "+
		"versions it passed over.\n\n",
		sidecar.Suffix, f.sha256, sidecar.Suffix, aws, shellQuote(bucket), shellQuote(key),
		f.sha256, sidecar.Suffix, aws, shellQuote(bucket), shellQuote(key), oneLine(name), RunbookSuffix)
}

// writeCheck prints block 1 of an encrypted archive fetched by block 0:
// sha256sum -c over the ciphertext as stored, then age decrypts it to
// archivePath, and the ciphertext copy is removed.
func (f *storeFetch) writeCheck(b *strings.Builder, archivePath string) {
	dir := path.Dir(archivePath)
	name := path.Base(archivePath)
	enc := dir + "/" + encryptedFetchDir
	fmt.Fprintf(b, "The `%s` file is over the encrypted archive as the store holds it, so `sha256sum -c` checks it "+
		"without the key; it looks for the file named in the `%s` file in its working directory, so the block "+
		"runs it from `%s` (in a subshell). It must print `%s: OK`. Then age decrypts the archive into `%s` "+
		"(age authenticates every 64 KiB chunk: a changed byte fails it) and the encrypted copy is removed. "+
		"Replace `%s` with the path of the age identity file (the private key) of one of the recipients it was "+
		"encrypted to (encrypt_to); left as is, the block fails. You need `age` (https://age-encryption.org).\n\n",
		sidecar.Suffix, sidecar.Suffix, oneLine(enc), oneLine(name), oneLine(archivePath), identityPlaceholder)
	fmt.Fprintf(b, "```sh\n(cd %s && sha256sum -c %s) && age -d -i %s -o %s %s && rm -r %s\n```\n\n",
		shellQuote(enc), shellQuote(name+sidecar.Suffix), shellQuote(identityPlaceholder), shellQuote(archivePath),
		shellQuote(enc+"/"+name), shellQuote(enc))
}
