package sealpost_test

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// plainDialect compiles with numbered placeholders and no store's
// functions, so that the tests read the SQL the compiler writes itself.
type plainDialect struct{}

func (plainDialect) Placeholder(n int) string   { return sealpost.PlaceholderDollar(n) }
func (plainDialect) Like(col, ph string) string { return col + " LIKE " + ph }
func (plainDialect) HasCategory(arg func(any) string, v string) string {
	return "CAT(" + arg(v) + ")"
}

func unix(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

func TestParseActivityQuery(t *testing.T) {
	t.Parallel()
	sec := int64(time.Second)
	tests := []struct {
		name  string
		query string
		sql   string
		args  []any
	}{
		{"empty", "", "TRUE", nil},
		{"blank", "  \t", "TRUE", nil},
		{"to_email", `to_email="example@example.com"`, "(r.email = $1)", []any{"example@example.com"}},
		{"from_email, single quotes", `from_email='testing@sendgrid.net'`, "(m.mail_from = $1)", []any{"testing@sendgrid.net"}},
		{"subject with escapes", `subject="say \"hi\" \\ bye"`, "(m.subject = $1)", []any{`say "hi" \ bye`}},
		{"msg_id", `msg_id="filter0307p1las1-16816-5A023E36-1.0"`, "(r.sg_message_id = $1)", []any{"filter0307p1las1-16816-5A023E36-1.0"}},
		{"msg_id LIKE, as SendGrid's X-Message-Id article", `msg_id LIKE 'AbC_d%'`, "(r.sg_message_id LIKE $1)", []any{"abc_d%"}},
		{"NOT LIKE escapes a backslash", `subject NOT LIKE "a\\b%"`, "NOT (m.subject LIKE $1)", []any{`a\\b%`}},
		{"not equal", `to_email != "a@example.com"`, "NOT (r.email = $1)", []any{"a@example.com"}},
		{"IN", `to_email IN ("a@example.com", "b@example.com")`, "(r.email IN ($1, $2))", []any{"a@example.com", "b@example.com"}},
		{"NOT IN", `to_email not in ("a@example.com")`, "NOT (r.email = $1)", []any{"a@example.com"}},
		{"status processed", `status="processed"`, "(r.state = $1)", []any{"queued"}},
		{"status not_delivered", `status="not_delivered"`, "(r.state IN ($1, $2, $3))", []any{"bounced", "blocked", "dropped"}},
		{"status IN", `status IN ("delivered","processed")`, "(r.state IN ($1, $2))", []any{"delivered", "queued"}},
		{"Contains", `(Contains(categories,"x"))`, "CAT($1)", []any{"x"}},
		{"categories =", `categories="x"`, "CAT($1)", []any{"x"}},
		{"categories !=", `categories != "x"`, "(NOT CAT($1))", []any{"x"}},
		{"BETWEEN TIMESTAMP, RFC 3339", `last_event_time BETWEEN TIMESTAMP "2017-11-07T23:13:58Z" AND TIMESTAMP "2017-11-08T00:00:00.000Z"`,
			"(r.last_event_at >= $1 AND r.last_event_at < $2)", []any{unix("2017-11-07T23:13:58Z"), unix("2017-11-08T00:00:00Z") + sec}},
		{"BETWEEN, the guide's form", `last_event_time BETWEEN TIMESTAMP "2018-02-01 00:00:00" AND TIMESTAMP "2018-02-02 00:00:00"`,
			"(r.last_event_at >= $1 AND r.last_event_at < $2)", []any{unix("2018-02-01T00:00:00Z"), unix("2018-02-02T00:00:00Z") + sec}},
		{"NOT BETWEEN, dates", `last_event_time NOT BETWEEN "2018-02-01" AND "2018-02-02"`,
			"NOT (r.last_event_at >= $1 AND r.last_event_at < $2)", []any{unix("2018-02-01T00:00:00Z"), unix("2018-02-02T00:00:00Z") + sec}},
		{"time equal is its second", `last_event_time="2017-11-07T23:13:58Z"`,
			"(r.last_event_at >= $1 AND r.last_event_at < $2)", []any{unix("2017-11-07T23:13:58Z"), unix("2017-11-07T23:13:58Z") + sec}},
		{"time >", `last_event_time > TIMESTAMP "2017-11-07T23:13:58Z"`,
			"(r.last_event_at >= $1 AND r.last_event_at < $2)", []any{unix("2017-11-07T23:13:58Z") + sec, int64(math.MaxInt64)}},
		{"time <=, offset zone", `last_event_time <= "2017-11-08T01:13:58+02:00"`,
			"(r.last_event_at >= $1 AND r.last_event_at < $2)", []any{int64(math.MinInt64), unix("2017-11-07T23:13:58Z") + sec}},
		{"AND binds tighter than OR", `to_email="a" OR to_email="b" AND subject="s"`,
			"((r.email = $1) OR ((r.email = $2) AND (m.subject = $3)))", []any{"a", "b", "s"}},
		{"parentheses", `(to_email="a" OR to_email="b") and NOT subject="s"`,
			"(((r.email = $1) OR (r.email = $2)) AND (NOT (m.subject = $3)))", []any{"a", "b", "s"}},
		{"the guide's compound query", `status="delivered" AND to_email="a@example.com"`,
			"((r.state = $1) AND (r.email = $2))", []any{"delivered", "a@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, err := sealpost.ParseActivityQuery(tc.query)
			if err != nil {
				t.Fatalf("ParseActivityQuery(%q): %v", tc.query, err)
			}
			sql, args := q.SQL(plainDialect{}, nil)
			if sql != tc.sql {
				t.Errorf("SQL\n got %s\nwant %s", sql, tc.sql)
			}
			if !slices.Equal(args, tc.args) {
				t.Errorf("args %v, want %v", args, tc.args)
			}
		})
	}
}

func TestParseActivityQueryRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ query, want string }{
		{`bad_field="x"`, "'bad_field' is not a known field"},
		{`TO_EMAIL="x"`, "'TO_EMAIL' is not a known field"},
		{`to_email=x`, "expected a quoted string"},
		{`to_email="x`, "not closed"},
		{"to_email=\n\"a\"", ""}, // a real newline is allowed outside strings
		{"to_email=\"a\nb\"", "control character"},
		{`to_email="a\qb"`, "backslash"},
		{`to_email="a" AND`, "ends where a condition was expected"},
		{`to_email="a" subject="b"`, "unexpected"},
		{`(to_email="a"`, "')'"},
		{`to_email="a")`, "unexpected"},
		{`to_email > "a"`, "expected =, !=, LIKE or IN"},
		{`to_email NOT "a"`, "NOT after to_email"},
		{`to_email IN ()`, "expected a quoted string"},
		{`to_email IN ("a" "b")`, "expected ',' or ')'"},
		{`status="bounced"`, "status must be one of processed, delivered, not_delivered"},
		{`status LIKE "d%"`, "not LIKE"},
		{`categories LIKE "x"`, "categories is compared with"},
		{`Contains(subject,"x")`, "Contains applies to categories only"},
		{`Contains(categories "x")`, "expected ','"},
		{`last_event_time BETWEEN "2017-01-01" "2017-01-02"`, "BETWEEN needs AND"},
		{`last_event_time = "yesterday"`, "is not a time"},
		{`last_event_time NOT = "2017-01-01"`, "must be followed by BETWEEN"},
		{`to_email ! "a"`, "'!' at 9 must be followed by '='"},
		{`to_email = "a" ; DROP TABLE recipients`, "unexpected character ';'"},
		{strings.Repeat("(", 40) + `to_email="a"` + strings.Repeat(")", 40), "nests deeper"},
		{strings.Repeat(`to_email="a" OR `, 70) + `to_email="a"`, "more than 64 conditions"},
		{`to_email IN (` + strings.Repeat(`"a",`, 100) + `"a")`, "at most 100 values"},
		{strings.Repeat(" ", 5000), "longer than 4096 bytes"},
		{"subject=\"\xff\"", "not valid UTF-8"},
	}
	for _, tc := range tests {
		_, err := sealpost.ParseActivityQuery(tc.query)
		if tc.want == "" {
			if err != nil {
				t.Errorf("ParseActivityQuery(%.60q): %v", tc.query, err)
			}
			continue
		}
		if sealpost.ErrorCode(err) != sealpost.EINVALID {
			t.Errorf("ParseActivityQuery(%.60q) = %v, want EINVALID", tc.query, err)
			continue
		}
		fields := sealpost.ErrorFields(err)
		if len(fields) != 1 || fields[0].Field != "query" || !strings.HasPrefix(fields[0].Message, "invalid syntax: ") ||
			!strings.Contains(fields[0].Message, tc.want) {
			t.Errorf("ParseActivityQuery(%.60q): %v, want a query error containing %q", tc.query, fields, tc.want)
		}
	}
}

// safeSQL is every character the compiler writes itself: no quote, so no
// value can have been written into the SQL.
var safeSQL = regexp.MustCompile(`^[A-Za-z0-9_ .(),=<>$]*$`)

// FuzzParseActivityQuery checks that no query makes the parser panic or
// fail other than with a query error, and that every accepted one compiles
// to SQL made only of the compiler's own words, with one argument per
// placeholder.
func FuzzParseActivityQuery(f *testing.F) {
	for _, seed := range []string{
		``,
		`to_email="example@example.com"`,
		`subject="This is a subject test"`,
		`status="processed" AND to_email="a@example.com"`,
		`msg_id LIKE 'abc%'`,
		`(Contains(categories,"x")) OR categories != "y"`,
		`last_event_time BETWEEN TIMESTAMP "2018-02-01 00:00:00" AND TIMESTAMP "2018-02-02T00:00:00.000Z"`,
		`NOT (to_email IN ("a","b") AND from_email NOT LIKE "%x_")`,
		`to_email = "a\" OR 1=1 --"`,
		`last_event_time >= "0001-01-01" AND last_event_time < "9999-12-31T23:59:59Z"`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := sealpost.ParseActivityQuery(query)
		if err != nil {
			fields := sealpost.ErrorFields(err)
			if sealpost.ErrorCode(err) != sealpost.EINVALID || len(fields) != 1 || fields[0].Field != "query" {
				t.Fatalf("ParseActivityQuery(%q): %v, want a query error", query, err)
			}
			return
		}
		sql, args := q.SQL(plainDialect{}, nil)
		if !safeSQL.MatchString(sql) {
			t.Fatalf("ParseActivityQuery(%q) compiled to %q", query, sql)
		}
		if n := strings.Count(sql, "$"); n != len(args) {
			t.Fatalf("ParseActivityQuery(%q): %d placeholders, %d args", query, n, len(args))
		}
	})
}
