package mariadb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// DumpComplete starts the last line of every complete mariadb-dump (and
// mysqldump) file, "-- Dump completed on <date>" or, with
// --skip-dump-date, "-- Dump completed".
const DumpComplete = "-- Dump completed"

// Section comments mariadb-dump writes before each table's parts.
const (
	tableStructure = "-- Table structure for table "
	dumpingData    = "-- Dumping data for table "
)

// DumpSummary is what reading a mariadb-dump file to its end told.
type DumpSummary struct {
	// Database is the one named in the header ("Database: …").
	Database string
	// Tables are the tables whose structure the dump holds, in order, as
	// the dump quotes them.
	Tables []string
	// Inserts counts INSERT statements: 0 for a dump without rows.
	Inserts int64
}

// DumpError is a mariadb-dump file that is not complete to its end.
type DumpError struct {
	Line int // 0 when it concerns the whole file
	Msg  string
}

func (e *DumpError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Hint tells the operator what to do.
func (e *DumpError) Hint() string {
	return "the dump stopped before its end or was altered; take a new one with mariadb-dump and check the job's disk space and logs"
}

// VerifyDump reads a plain mariadb-dump to its end and checks its
// structure: the dump header, every table's data section present and
// closed (a dump cut short, or a --no-data dump, lacks them), and the
// closing "-- Dump completed" line followed by nothing but blank lines.
// Lines of any length are read in bounded memory.
func VerifyDump(r io.Reader) (*DumpSummary, error) {
	sum := &DumpSummary{}
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		lineNo      int
		atStart     = true
		head        []byte // first bytes of the current line
		header      bool
		seen        bool
		completed   int // line of the last DumpComplete, 0 when none after content
		data        = map[string]bool{}
		open        string // table whose data section is open ("" none)
		openLine    int
		tail        []byte // last bytes of the current line
		closed      bool   // the open section's last statement line ends one
		locks       bool   // the open section has LOCK TABLES
		lockless    []int  // sections without LOCK TABLES
		anyLock     bool   // the dump writes LOCK TABLES (--add-locks, the default)
		lastContent int
		cutErr      error
	)
	// closeSection ends the open data section. It is whole when its last
	// statement line ends a statement, and is UNLOCK TABLES when it
	// locked the table. A dump that locks tables (the default) locks
	// every one: a section without LOCK TABLES was cut.
	closeSection := func() {
		if open != "" && cutErr == nil {
			if !closed {
				cutErr = &DumpError{Line: openLine, Msg: fmt.Sprintf("the data of table %s does not end with a whole statement: its rows were cut", open)}
			} else if !locks {
				lockless = append(lockless, openLine)
			}
		}
		open = ""
	}
	finishLine := func() error {
		line := string(head)
		trimmed := strings.TrimRight(line, "\r\n")
		switch {
		case strings.TrimSpace(trimmed) == "":
			return nil
		case !header && (strings.HasPrefix(trimmed, "-- MariaDB dump") || strings.HasPrefix(trimmed, "-- MySQL dump")):
			header = true
		case !header && lineNo == 1 && strings.HasPrefix(trimmed, "/*M!999999"):
			// The sandbox-mode line recent mariadb-dump releases write
			// first.
		case !header:
			return &DumpError{Line: lineNo, Msg: "no \"-- MariaDB dump\" header: not a mariadb-dump file"}
		case strings.HasPrefix(trimmed, "-- Host: ") && sum.Database == "" && strings.Contains(trimmed, "Database: "):
			sum.Database = trimmed[strings.Index(trimmed, "Database: ")+len("Database: "):]
		case strings.HasPrefix(trimmed, tableStructure):
			closeSection()
			sum.Tables = append(sum.Tables, trimmed[len(tableStructure):])
		case strings.HasPrefix(trimmed, dumpingData):
			closeSection()
			open, openLine, closed, locks = trimmed[len(dumpingData):], lineNo, false, false
			data[open] = true
		case completeLine.MatchString(trimmed):
			closeSection()
			completed = lineNo
			return nil
		case strings.HasPrefix(trimmed, "-- ") || trimmed == "--":
			// Comments do not count as content after the end marker,
			// except the section headers above.
			if strings.HasPrefix(trimmed, "-- Temporary table structure for view ") ||
				strings.HasPrefix(trimmed, "-- Final view structure for view ") ||
				strings.HasPrefix(trimmed, "-- Dumping ") || strings.HasPrefix(trimmed, "-- Sequence structure for ") {
				closeSection()
			}
		case strings.HasPrefix(trimmed, "LOCK TABLES "):
			anyLock = true
			if open != "" {
				locks, closed = true, false
			}
		case open != "" && locks:
			if trimmed == "UNLOCK TABLES;" {
				// The data ends here; the table's triggers follow.
				closed = true
				closeSection()
			}
			if strings.HasPrefix(trimmed, "INSERT INTO ") {
				sum.Inserts++
			}
		case open != "":
			closed = bytes.HasSuffix(bytes.TrimRight(tail, "\r\n"), []byte(";"))
			if strings.HasPrefix(trimmed, "INSERT INTO ") {
				sum.Inserts++
			}
		case strings.HasPrefix(trimmed, "INSERT INTO "):
			sum.Inserts++
		}
		lastContent = lineNo
		return nil
	}
	for {
		seg, rerr := br.ReadSlice('\n')
		if len(seg) > 0 {
			seen = true
			if atStart {
				lineNo++
				head = head[:0]
			}
			if room := 1024 - len(head); room > 0 {
				head = append(head, seg[:min(room, len(seg))]...)
			}
			if atStart {
				tail = tail[:0]
			}
			tail = append(tail, seg[max(0, len(seg)-16):]...)
			if len(tail) > 16 {
				tail = append(tail[:0], tail[len(tail)-16:]...)
			}
			atStart = seg[len(seg)-1] == '\n'
			if atStart {
				if err := finishLine(); err != nil {
					return sum, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil && !errors.Is(rerr, bufio.ErrBufferFull) {
			return sum, rerr
		}
	}
	if !atStart {
		// The last line has no newline: a complete dump ends with one.
		if err := finishLine(); err != nil {
			return sum, err
		}
		if completed == lineNo {
			return sum, &DumpError{Line: lineNo, Msg: "the closing line has no end of line: the file was cut inside it"}
		}
	}
	switch {
	case !seen:
		return sum, &DumpError{Msg: "empty file"}
	case !header:
		return sum, &DumpError{Msg: "no \"-- MariaDB dump\" header: not a mariadb-dump file"}
	case completed == 0 || lastContent > completed:
		return sum, &DumpError{Line: lineNo, Msg: fmt.Sprintf("no %q line at its end: the dump stopped before completion", DumpComplete)}
	}
	if cutErr != nil {
		return sum, cutErr
	}
	if anyLock && len(lockless) > 0 {
		return sum, &DumpError{Line: lockless[0], Msg: "this table's data has no LOCK TABLES, unlike the others: its rows were cut"}
	}
	var missing []string
	for _, t := range sum.Tables {
		if !data[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return sum, &DumpError{Msg: fmt.Sprintf("no data section for table(s) %s: a --no-data dump, or tables left out", strings.Join(missing, ", "))}
	}
	return sum, nil
}

// completeLine is the closing line: mariadb-dump writes the date as
// %04d-%02d-%02d %2d:%02d:%02d, or nothing with --skip-dump-date.
var completeLine = regexp.MustCompile(`^-- Dump completed( on \d{4}-\d\d-\d\d [ \d]\d:\d\d:\d\d)?$`)

// sniffDump reports whether head starts like a mariadb-dump file.
func sniffDump(head []byte) bool {
	return bytes.Contains(head, []byte("-- MariaDB dump")) || bytes.Contains(head, []byte("-- MySQL dump"))
}

// LooksLikeDump reports whether the first bytes of a file are those of a
// mariadb-dump (or mysqldump) file.
func LooksLikeDump(head []byte) bool { return sniffDump(head) }
