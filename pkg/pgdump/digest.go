package pgdump

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/childproc"
)

// PlainDigest is the sha256 of the SQL script pg_dump writes for database
// (--format=plain): its schema and every row. With ArchiveDigest of a
// custom-format dump of the same database, unchanged, it is equal: pg_dump
// renders a plain script through the same archiver that pg_restore -f uses.
// Lines that differ between two runs over the same content (the
// \restrict key, the tool and server versions) are left out.
func PlainDigest(ctx context.Context, c Conn, database string) (string, error) {
	return digest(ctx, c, "pg_dump", "--format=plain", "--no-password", "--file=-", "--dbname="+DBNameArg(database))
}

// ArchiveDigest is the sha256 of the SQL script pg_restore renders from a
// custom-format dump file, normalized as PlainDigest's.
func ArchiveDigest(ctx context.Context, file string) (string, error) {
	return digest(ctx, Conn{}, "pg_restore", "--file=-", file)
}

// varyingLine reports lines of a plain script that two dumps of the same
// content do not share.
func varyingLine(line []byte) bool {
	for _, p := range []string{`\restrict `, `\unrestrict `, "-- Dumped from database version", "-- Dumped by pg_dump version"} {
		if bytes.HasPrefix(line, []byte(p)) {
			return true
		}
	}
	return false
}

func digest(ctx context.Context, c Conn, tool string, args ...string) (string, error) {
	cmd := childproc.Command(ctx, tool, args...)
	if tool == "pg_dump" {
		cmd.Env = c.Env()
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := childproc.Start(cmd); err != nil {
		return "", fmt.Errorf("%s: %w", tool, err)
	}
	h := sha256.New()
	br := bufio.NewReaderSize(out, 256<<10)
	var rerr error
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line (a row of COPY data): never one of the
			// varying lines, hashed as it comes.
			h.Write(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				h.Write(line)
			}
		} else if !varyingLine(line) {
			h.Write(line)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				rerr = err
			}
			break
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if err := childproc.Wait(cmd); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		return "", fmt.Errorf("%s %s: %w: %s", tool, args[len(args)-1], err, msg)
	}
	if rerr != nil {
		return "", fmt.Errorf("%s: read its output: %w", tool, rerr)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
