// Package modutil holds what every fleetsafe module shares: the layout and
// PostgreSQL parameter groups and how they become library values.
package modutil

import (
	"github.com/fleetsafe/fleetsafe/internal/testhooks"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/mysql"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// LayoutSpec is the layout | layout_file parameter pair, exactly one, and
// the directory of the host's other layouts.
var LayoutSpec = ansible.Spec{
	Params: map[string]ansible.Param{
		"layout":      {Type: ansible.TypeDict},
		"layout_file": {Type: ansible.TypePath},
		"layouts_dir": {Type: ansible.TypePath, Default: instance.DefaultLayoutsDir},
	},
	MutuallyExclusive: [][]string{{"layout", "layout_file"}},
	RequiredOneOf:     [][]string{{"layout", "layout_file"}},
}

// PGSpec holds community.postgresql's connection parameters.
var PGSpec = ansible.Spec{
	Params: map[string]ansible.Param{
		"login_host":        {Type: ansible.TypeStr, Aliases: []string{"host"}},
		"port":              {Type: ansible.TypeInt, Aliases: []string{"login_port"}},
		"login_user":        {Type: ansible.TypeStr, Aliases: []string{"login"}},
		"login_password":    {Type: ansible.TypeStr, NoLog: true},
		"login_unix_socket": {Type: ansible.TypeStr, Aliases: []string{"unix_socket"}},
		"ssl_mode": {Type: ansible.TypeStr, Choices: []string{
			"allow", "disable", "prefer", "require", "verify-ca", "verify-full"}},
	},
}

// MySQLSpec holds how to reach the MariaDB server of mysql components:
// its socket and user (by default Debian's socket and the user running
// the module, which Debian's packages let in as root), and a password.
var MySQLSpec = ansible.Spec{
	Params: map[string]ansible.Param{
		"mysql_socket":   {Type: ansible.TypePath},
		"mysql_user":     {Type: ansible.TypeStr},
		"mysql_password": {Type: ansible.TypeStr, NoLog: true},
	},
}

// DBSpec is PGSpec and MySQLSpec: every database server's parameters.
var DBSpec = PGSpec.Merge(MySQLSpec)

// Settings returns the connection settings of the kinds other than
// postgresql (instance.Options.Settings): MariaDB's.
func Settings(p ansible.Params) map[string]any {
	return map[string]any{mysql.Type: mariadb.Conn{
		Socket:   p.String("mysql_socket"),
		User:     p.String("mysql_user"),
		Password: p.String("mysql_password"),
	}}
}

// PG returns the PostgreSQL connection parameters.
func PG(p ansible.Params) pgdump.Conn {
	return pgdump.Conn{
		Host:       p.String("login_host"),
		Port:       int(p.Int("port")),
		User:       p.String("login_user"),
		Password:   p.String("login_password"),
		UnixSocket: p.String("login_unix_socket"),
		SSLMode:    p.String("ssl_mode"),
	}
}

// Options returns discovery options. With the test hooks (internal/testhooks),
// FLEETSAFE_SYSTEMD_DIR and FLEETSAFE_SYSTEMCTL point discovery at another
// unit tree and systemctl; tests and the sandbox demo use them because no
// systemd runs there. A release binary always uses the host's.
func Options(p ansible.Params) instance.Options {
	h := testhooks.Get()
	return instance.Options{
		PG:         PG(p),
		Settings:   Settings(p),
		SystemdDir: h.SystemdDir,
		Systemctl:  h.Systemctl,
	}
}
