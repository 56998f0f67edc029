package model

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/kinds/mysql"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// typeMySQL is the mysql kind's type.
const typeMySQL = mysql.Type

// isDatabase reports whether a component type is a database kind (its
// quarantine is a database of its server, purged by the kind).
func isDatabase(typ string) bool { return typ == typeMySQL || typ == "postgresql" }

// createMySQL makes the MariaDB database of instance name: a table with
// rows (binary too), a view over it, a function the view calls and a
// trigger, which RENAME TABLE cannot carry.
func createMySQL(ctx context.Context, t *rapid.T, c mariadb.Conn, db, name string) {
	defer timed("setup mysql database", time.Now())
	admin, err := c.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	q := mariadb.QuoteIdent(db)
	for _, s := range []string{
		"CREATE DATABASE " + q + " CHARACTER SET utf8mb4",
		"CREATE TABLE " + q + ".content (id INT PRIMARY KEY AUTO_INCREMENT, label VARCHAR(100) NOT NULL, body VARBINARY(32)) ENGINE=InnoDB",
		"INSERT INTO " + q + ".content (label, body) SELECT CONCAT('doc-', seq, '-" + name + "'), UNHEX(MD5(seq)) FROM mysql.seq_1_to_12",
		"CREATE FUNCTION " + q + ".shout(s VARCHAR(100)) RETURNS VARCHAR(100) DETERMINISTIC RETURN UPPER(s)",
		"CREATE VIEW " + q + ".labels AS SELECT id, " + q + ".shout(label) AS label FROM " + q + ".content",
		"CREATE TRIGGER " + q + ".stamp BEFORE INSERT ON " + q + ".content FOR EACH ROW SET NEW.body = COALESCE(NEW.body, x'00')",
	} {
		if _, err := admin.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

var (
	myDumpDate = regexp.MustCompile(`(?m)^-- Dump completed on .*$`)
	myDumpHost = regexp.MustCompile(`(?m)^-- Host: .*$`)
)

// myDigest is the digest of a MariaDB database as mariadb-dump writes it
// (every table's structure and rows, its views, routines, triggers and
// events), without the lines naming the host, the database and the date;
// "restore stopped half-way" for a database a stopped move left.
func myDigest(ctx context.Context, c mariadb.Conn, db string) (string, error) {
	admin, err := c.Open(ctx, "")
	if err != nil {
		return "", err
	}
	from, err := mariadb.Incoming(ctx, admin, db)
	admin.Close()
	if err != nil {
		return "", err
	}
	if from != "" {
		return "restore stopped half-way from " + from, nil
	}
	var b bytes.Buffer
	if err := mariadb.Dump(ctx, c, db, &b); err != nil {
		return "", err
	}
	s := myDumpHost.ReplaceAllString(myDumpDate.ReplaceAllString(b.String(), ""), "")
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:]), nil
}

// myDatabases lists the MariaDB server's databases, fleetsafe's own too.
func myDatabases(ctx context.Context, c mariadb.Conn) (map[string]bool, error) {
	admin, err := c.Open(ctx, "")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	rows, err := admin.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

// dropMySQLLike drops every MariaDB database whose name contains marker
// (a fleet's, its quarantines and staging databases).
func dropMySQLLike(ctx context.Context, c mariadb.Conn, marker string) error {
	dbs, err := myDatabases(ctx, c)
	if err != nil {
		return err
	}
	admin, err := c.Open(ctx, "")
	if err != nil {
		return err
	}
	defer admin.Close()
	for n := range dbs {
		if strings.Contains(n, marker) {
			if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+mariadb.QuoteIdent(n)); err != nil {
				return fmt.Errorf("drop %s: %w", n, err)
			}
		}
	}
	return nil
}
