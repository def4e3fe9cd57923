package sealpost

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on an Email Activity query, which comes from untrusted callers and
// becomes SQL: its length, how deeply it nests, how many conditions and
// IN values it holds.
const (
	maxActivityQueryBytes  = 4096
	maxActivityQueryDepth  = 16
	maxActivityQueryTerms  = 64
	maxActivityQueryValues = 100
)

// ActivityQuery is a parsed Email Activity query (the query parameter of
// GET /v3/messages). Its zero value matches everything.
type ActivityQuery struct {
	root queryNode
}

// Activity query fields and the columns they compile to. The stores query
// recipients as r joined to messages as m.
var activityColumns = map[string]string{
	"msg_id":          "r.sg_message_id",
	"to_email":        "r.email",
	"from_email":      "m.mail_from",
	"subject":         "m.subject",
	"status":          "r.state",
	"last_event_time": "r.last_event_at",
	"categories":      "", // by the dialect
}

type queryNode interface{ isQueryNode() }

type (
	boolNode struct {
		and  bool // else or
		l, r queryNode
	}
	notNode     struct{ x queryNode }
	compareNode struct {
		field  string
		op     string // =, !=, LIKE, NOT LIKE, IN, NOT IN
		values []string
	}
	// timeNode matches last_event_time in [from, to), in Unix nanoseconds.
	timeNode struct {
		from, to int64
		negate   bool
	}
	categoryNode struct{ value string }
)

func (boolNode) isQueryNode()     {}
func (notNode) isQueryNode()      {}
func (compareNode) isQueryNode()  {}
func (timeNode) isQueryNode()     {}
func (categoryNode) isQueryNode() {}

// ParseActivityQuery parses SendGrid's Email Activity query language, the
// subset README's "Email Activity" lists. An empty query matches
// everything. A malformed one is EINVALID on field "query", its message
// starting "invalid syntax:" as SendGrid's do.
func ParseActivityQuery(s string) (*ActivityQuery, error) {
	if len(s) > maxActivityQueryBytes {
		return nil, queryError("the query is longer than %d bytes", maxActivityQueryBytes)
	}
	if !utf8.ValidString(s) {
		return nil, queryError("the query is not valid UTF-8")
	}
	toks, err := lexActivityQuery(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return &ActivityQuery{}, nil
	}
	p := &queryParser{toks: toks}
	root, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, queryError("unexpected %s", p.toks[p.pos])
	}
	return &ActivityQuery{root: root}, nil
}

func queryError(format string, args ...any) error {
	return Invalid(FieldError{Field: "query", Message: "invalid syntax: " + fmt.Sprintf(format, args...)})
}

type tokenKind int

const (
	tokWord tokenKind = iota // a field name or keyword
	tokString
	tokOp // = != < <= > >=
	tokLParen
	tokRParen
	tokComma
)

type token struct {
	kind tokenKind
	text string // a string's value, unquoted
	at   int
}

func (t token) String() string {
	switch t.kind {
	case tokString:
		return fmt.Sprintf("string %.40q at %d", t.text, t.at)
	default:
		return fmt.Sprintf("'%.40s' at %d", t.text, t.at)
	}
}

func lexActivityQuery(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tokComma, ",", i})
			i++
		case c == '=':
			toks = append(toks, token{tokOp, "=", i})
			i++
		case c == '!' || c == '<' || c == '>':
			op := string(c)
			if i+1 < len(s) && s[i+1] == '=' {
				op += "="
			}
			if op == "!" {
				return nil, queryError("'!' at %d must be followed by '='", i)
			}
			toks = append(toks, token{tokOp, op, i})
			i += len(op)
		case c == '"' || c == '\'':
			val, n, err := lexString(s[i:], i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokString, val, i})
			i += n
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return nil, queryError("unexpected character %q at %d", r, i)
		}
		if len(toks) > 8*maxActivityQueryTerms {
			return nil, queryError("the query has too many parts")
		}
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// lexString reads the quoted string s starts with: backslash escapes the
// quote and itself, nothing else.
func lexString(s string, at int) (string, int, error) {
	quote := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == quote:
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 < len(s) && (s[i+1] == quote || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i++
				continue
			}
			return "", 0, queryError("a backslash at %d escapes only the quote or a backslash", at+i)
		case c < 0x20 || c == 0x7f:
			return "", 0, queryError("a control character at %d in a string", at+i)
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, queryError("the string at %d is not closed", at)
}

type queryParser struct {
	toks  []token
	pos   int
	terms int
}

func (p *queryParser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

// keyword reports whether the next token is the keyword kw (any case) and
// consumes it if so.
func (p *queryParser) keyword(kw string) bool {
	t, ok := p.peek()
	if ok && t.kind == tokWord && strings.EqualFold(t.text, kw) {
		p.pos++
		return true
	}
	return false
}

func (p *queryParser) next(what string) (token, error) {
	t, ok := p.peek()
	if !ok {
		return token{}, queryError("the query ends where %s was expected", what)
	}
	p.pos++
	return t, nil
}

func (p *queryParser) expect(kind tokenKind, what string) (token, error) {
	t, err := p.next(what)
	if err != nil {
		return t, err
	}
	if t.kind != kind {
		return t, queryError("expected %s, found %s", what, t)
	}
	return t, nil
}

func (p *queryParser) or(depth int) (queryNode, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = boolNode{and: false, l: l, r: r}
	}
	return l, nil
}

func (p *queryParser) and(depth int) (queryNode, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = boolNode{and: true, l: l, r: r}
	}
	return l, nil
}

func (p *queryParser) unary(depth int) (queryNode, error) {
	if depth > maxActivityQueryDepth {
		return nil, queryError("the query nests deeper than %d", maxActivityQueryDepth)
	}
	if p.keyword("NOT") {
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	}
	t, err := p.next("a condition")
	if err != nil {
		return nil, err
	}
	if t.kind == tokLParen {
		x, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		return x, nil
	}
	if t.kind != tokWord {
		return nil, queryError("expected a field, found %s", t)
	}
	if p.terms++; p.terms > maxActivityQueryTerms {
		return nil, queryError("the query has more than %d conditions", maxActivityQueryTerms)
	}
	if strings.EqualFold(t.text, "Contains") {
		return p.contains()
	}
	if _, known := activityColumns[t.text]; !known {
		return nil, queryError("'%.40s' is not a known field", t.text)
	}
	switch t.text {
	case "last_event_time":
		return p.timeCondition()
	case "categories":
		op, err := p.expect(tokOp, "'='")
		if err != nil || (op.text != "=" && op.text != "!=") {
			return nil, queryError("categories is compared with = or != only, or tested with Contains(categories, \"...\")")
		}
		v, err := p.expect(tokString, "a string")
		if err != nil {
			return nil, err
		}
		if op.text == "!=" {
			return notNode{categoryNode{v.text}}, nil
		}
		return categoryNode{v.text}, nil
	}
	return p.comparison(t.text)
}

// contains parses the rest of Contains(categories, "value").
func (p *queryParser) contains() (queryNode, error) {
	if _, err := p.expect(tokLParen, "'(' after Contains"); err != nil {
		return nil, err
	}
	f, err := p.expect(tokWord, "categories")
	if err != nil {
		return nil, err
	}
	if f.text != "categories" {
		return nil, queryError("Contains applies to categories only, not '%.40s'", f.text)
	}
	if _, err := p.expect(tokComma, "','"); err != nil {
		return nil, err
	}
	v, err := p.expect(tokString, "a string")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tokRParen, "')'"); err != nil {
		return nil, err
	}
	return categoryNode{v.text}, nil
}

// comparison parses the operator and value(s) after a text field.
func (p *queryParser) comparison(field string) (queryNode, error) {
	t, err := p.next("an operator")
	if err != nil {
		return nil, err
	}
	op := ""
	switch {
	case t.kind == tokOp && (t.text == "=" || t.text == "!="):
		op = t.text
	case t.kind == tokWord && strings.EqualFold(t.text, "LIKE"):
		op = "LIKE"
	case t.kind == tokWord && strings.EqualFold(t.text, "IN"):
		op = "IN"
	case t.kind == tokWord && strings.EqualFold(t.text, "NOT"):
		switch {
		case p.keyword("LIKE"):
			op = "NOT LIKE"
		case p.keyword("IN"):
			op = "NOT IN"
		default:
			return nil, queryError("NOT after %s must be followed by LIKE or IN", field)
		}
	default:
		return nil, queryError("expected =, !=, LIKE or IN after %s, found %s", field, t)
	}
	var values []string
	if op == "IN" || op == "NOT IN" {
		if values, err = p.list(); err != nil {
			return nil, err
		}
	} else {
		v, err := p.expect(tokString, "a quoted string")
		if err != nil {
			return nil, err
		}
		values = []string{v.text}
	}
	if field == "status" {
		if op == "LIKE" || op == "NOT LIKE" {
			return nil, queryError("status is compared with =, != or IN, not LIKE")
		}
		for _, v := range values {
			if activityStates(v) == nil {
				return nil, queryError("status must be one of processed, delivered, not_delivered, not %.40q", v)
			}
		}
	}
	return compareNode{field: field, op: op, values: values}, nil
}

// list parses ("a", "b", ...).
func (p *queryParser) list() ([]string, error) {
	if _, err := p.expect(tokLParen, "'(' after IN"); err != nil {
		return nil, err
	}
	var values []string
	for {
		v, err := p.expect(tokString, "a quoted string")
		if err != nil {
			return nil, err
		}
		if values = append(values, v.text); len(values) > maxActivityQueryValues {
			return nil, queryError("an IN list holds at most %d values", maxActivityQueryValues)
		}
		t, err := p.next("',' or ')'")
		if err != nil {
			return nil, err
		}
		if t.kind == tokRParen {
			return values, nil
		}
		if t.kind != tokComma {
			return nil, queryError("expected ',' or ')', found %s", t)
		}
	}
}

// timeCondition parses the rest of a last_event_time condition. Times
// count in whole seconds, as SendGrid reports them: = matches the second
// named, <= includes it, BETWEEN includes both ends' seconds.
func (p *queryParser) timeCondition() (queryNode, error) {
	negate := p.keyword("NOT")
	if p.keyword("BETWEEN") {
		from, err := p.timestamp()
		if err != nil {
			return nil, err
		}
		if !p.keyword("AND") {
			return nil, queryError("BETWEEN needs AND between its two times")
		}
		to, err := p.timestamp()
		if err != nil {
			return nil, err
		}
		return timeNode{from: nanos(from), to: nanos(to.Add(time.Second)), negate: negate}, nil
	}
	if negate {
		return nil, queryError("NOT after last_event_time must be followed by BETWEEN")
	}
	op, err := p.expect(tokOp, "a comparison")
	if err != nil {
		return nil, err
	}
	t, err := p.timestamp()
	if err != nil {
		return nil, err
	}
	lo, hi := nanos(t), nanos(t.Add(time.Second))
	switch op.text {
	case "=":
		return timeNode{from: lo, to: hi}, nil
	case "!=":
		return timeNode{from: lo, to: hi, negate: true}, nil
	case "<":
		return timeNode{from: math.MinInt64, to: lo}, nil
	case "<=":
		return timeNode{from: math.MinInt64, to: hi}, nil
	case ">":
		return timeNode{from: hi, to: math.MaxInt64}, nil
	default: // ">="
		return timeNode{from: lo, to: math.MaxInt64}, nil
	}
}

// activityTimeLayouts are the forms a time may take: RFC 3339 with or
// without fractions, the "YYYY-MM-DD HH:MM:SS" SendGrid's guide shows
// (UTC), and a date (its midnight, UTC).
var activityTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

// timestamp parses [TIMESTAMP] "time", truncated to the second.
func (p *queryParser) timestamp() (time.Time, error) {
	p.keyword("TIMESTAMP")
	v, err := p.expect(tokString, "a quoted time")
	if err != nil {
		return time.Time{}, err
	}
	for _, layout := range activityTimeLayouts {
		if t, err := time.Parse(layout, v.text); err == nil {
			return t.UTC().Truncate(time.Second), nil
		}
	}
	return time.Time{}, queryError("%.40q is not a time such as \"2017-11-07T23:13:58Z\" or \"2017-11-07 23:13:58\"", v.text)
}

// nanos is t in Unix nanoseconds, clamped to what int64 holds.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// ActivityDialect is what a store's SQL needs of the compiler: its
// placeholders, case-insensitive LIKE, and category membership. arg
// appends a value to the arguments and returns its placeholder.
type ActivityDialect interface {
	Placeholder(n int) string
	// Like is col matching the LIKE pattern (ASCII letters folded to lower
	// case, backslash its escape) whose placeholder is ph, ignoring the
	// case of ASCII letters.
	Like(col, ph string) string
	// HasCategory is the message m (or its body) having category value.
	HasCategory(arg func(v any) string, value string) string
}

// SQL compiles q into a boolean SQL expression over recipients r joined to
// messages m, every value a parameter: args are appended to args, the
// first getting placeholder len(args)+1.
func (q *ActivityQuery) SQL(d ActivityDialect, args []any) (string, []any) {
	if q == nil || q.root == nil {
		return "TRUE", args
	}
	c := &queryCompiler{d: d, args: args}
	c.node(q.root)
	return c.b.String(), c.args
}

type queryCompiler struct {
	d    ActivityDialect
	b    strings.Builder
	args []any
}

func (c *queryCompiler) arg(v any) string {
	c.args = append(c.args, v)
	return c.d.Placeholder(len(c.args))
}

func (c *queryCompiler) node(n queryNode) {
	switch n := n.(type) {
	case boolNode:
		op := " OR "
		if n.and {
			op = " AND "
		}
		c.b.WriteString("(")
		c.node(n.l)
		c.b.WriteString(op)
		c.node(n.r)
		c.b.WriteString(")")
	case notNode:
		c.b.WriteString("(NOT ")
		c.node(n.x)
		c.b.WriteString(")")
	case categoryNode:
		c.b.WriteString(c.d.HasCategory(c.arg, n.value))
	case timeNode:
		if n.negate {
			c.b.WriteString("NOT ")
		}
		c.b.WriteString("(r.last_event_at >= " + c.arg(n.from) + " AND r.last_event_at < " + c.arg(n.to) + ")")
	case compareNode:
		c.compare(n)
	}
}

func (c *queryCompiler) compare(n compareNode) {
	col := activityColumns[n.field]
	values := make([]any, 0, len(n.values))
	for _, v := range n.values {
		if n.field != "status" {
			values = append(values, v)
			continue
		}
		for _, s := range activityStates(v) {
			values = append(values, string(s))
		}
	}
	switch n.op {
	case "LIKE", "NOT LIKE":
		if n.op == "NOT LIKE" {
			c.b.WriteString("NOT ")
		}
		c.b.WriteString("(" + c.d.Like(col, c.arg(likePattern(n.values[0]))) + ")")
		return
	case "!=", "NOT IN":
		c.b.WriteString("NOT ")
	}
	if len(values) == 1 {
		c.b.WriteString("(" + col + " = " + c.arg(values[0]) + ")")
		return
	}
	c.b.WriteString("(" + col + " IN (")
	for i, v := range values {
		if i > 0 {
			c.b.WriteString(", ")
		}
		c.b.WriteString(c.arg(v))
	}
	c.b.WriteString("))")
}

// likePattern is a query's LIKE pattern for SQL's LIKE ... ESCAPE '\':
// % and _ stay wildcards, a backslash is literal, ASCII letters are folded
// to lower case to compare without case.
func likePattern(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// PlaceholderQuestion and PlaceholderDollar number a dialect's parameters.
func PlaceholderQuestion(int) string { return "?" }

// PlaceholderDollar is PostgreSQL's $n.
func PlaceholderDollar(n int) string { return "$" + strconv.Itoa(n) }
