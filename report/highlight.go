package report

import (
	"html"
	"html/template"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Token classes of the highlighter; the HTML report styles them by these
// names (class "k", "s", ...).
const (
	TokKeyword  = "k" // a keyword of PostgreSQL's grammar
	TokFunction = "f" // a name called as a function
	TokString   = "s" // a string constant
	TokNumber   = "n" // a numeric constant
	TokComment  = "c" // a comment
	TokParam    = "p" // a $1 parameter
	TokOperator = "o" // an operator or ::
	TokQuoted   = "q" // a "quoted identifier"
	TokPlain    = ""  // identifiers, punctuation, white space
)

// Token is a run of SQL text with its class.
type Token struct {
	Class string
	Text  string
}

// Highlight splits SQL into classed tokens with PostgreSQL's own scanner
// (pg_query.Scan), so that the classes follow the server's grammar: keyword
// kinds from its keyword list, dollar-quoted bodies (functions, DO blocks)
// scanned again inside their quotes. Concatenating the texts gives the input
// back. Text the scanner rejects is returned as one plain token.
func Highlight(sql string) []Token {
	res, err := pg_query.Scan(sql)
	if err != nil || len(res.Tokens) == 0 {
		return []Token{{TokPlain, sql}}
	}
	toks := res.Tokens
	var out []Token
	pos := 0
	emit := func(class, text string) {
		if text == "" {
			return
		}
		if n := len(out); n > 0 && out[n-1].Class == class {
			out[n-1].Text += text
			return
		}
		out = append(out, Token{class, text})
	}
	for i, t := range toks {
		start, end := int(t.Start), int(t.End)
		if start < pos || end > len(sql) || start > end {
			// Offsets the scanner should never give: keep the text intact.
			return []Token{{TokPlain, sql}}
		}
		emit(TokPlain, sql[pos:start])
		text := sql[start:end]
		pos = end
		next := func() pg_query.Token {
			if i+1 < len(toks) {
				return toks[i+1].Token
			}
			return pg_query.Token_NUL
		}
		prev := func() pg_query.Token {
			if i > 0 {
				return toks[i-1].Token
			}
			return pg_query.Token_NUL
		}
		switch {
		case t.Token == pg_query.Token_SQL_COMMENT || t.Token == pg_query.Token_C_COMMENT:
			emit(TokComment, text)
		case t.Token == pg_query.Token_SCONST && strings.HasPrefix(text, "$"):
			dollarQuoted(text, emit)
		case t.Token == pg_query.Token_SCONST || t.Token == pg_query.Token_USCONST ||
			t.Token == pg_query.Token_BCONST || t.Token == pg_query.Token_XCONST:
			emit(TokString, text)
		case t.Token == pg_query.Token_ICONST || t.Token == pg_query.Token_FCONST:
			emit(TokNumber, text)
		case t.Token == pg_query.Token_PARAM:
			emit(TokParam, text)
		case t.Token == pg_query.Token_Op || t.Token == pg_query.Token_TYPECAST ||
			t.Token == pg_query.Token_COLON_EQUALS || t.Token == pg_query.Token_EQUALS_GREATER ||
			t.Token == pg_query.Token_LESS_EQUALS || t.Token == pg_query.Token_GREATER_EQUALS ||
			t.Token == pg_query.Token_NOT_EQUALS || isOperatorChar(text):
			emit(TokOperator, text)
		case t.KeywordKind != pg_query.KeywordKind_NO_KEYWORD:
			// A keyword used as a name: a qualified name's part
			// (category.name) or, unless reserved, a function called by
			// it (coalesce(...)).
			switch {
			case prev() == pg_query.Token_ASCII_46 || next() == pg_query.Token_ASCII_46:
				emit(TokPlain, text)
			case next() == pg_query.Token_ASCII_40 && t.KeywordKind != pg_query.KeywordKind_RESERVED_KEYWORD:
				emit(TokFunction, text)
			default:
				emit(TokKeyword, text)
			}
		case t.Token == pg_query.Token_IDENT && strings.HasPrefix(text, `"`):
			emit(TokQuoted, text)
		case t.Token == pg_query.Token_IDENT && next() == pg_query.Token_ASCII_40:
			emit(TokFunction, text)
		default:
			emit(TokPlain, text)
		}
	}
	emit(TokPlain, sql[pos:])
	return out
}

// isOperatorChar reports whether a one-character token is an operator
// (the scanner gives those their ASCII code as token).
func isOperatorChar(s string) bool {
	return len(s) == 1 && strings.ContainsRune("+-*/<>=%^", rune(s[0]))
}

// dollarQuoted emits $tag$body$tag$: the quotes as a string, the body
// scanned as SQL (a function body, a DO block). PL/pgSQL shares the SQL
// lexer, so its keywords and strings come out right.
func dollarQuoted(text string, emit func(class, text string)) {
	end := strings.IndexByte(text[1:], '$')
	if end < 0 {
		emit(TokString, text)
		return
	}
	tag := text[:end+2]
	if len(text) < 2*len(tag) || !strings.HasSuffix(text, tag) {
		emit(TokString, text)
		return
	}
	body := text[len(tag) : len(text)-len(tag)]
	emit(TokString, tag)
	for _, t := range Highlight(body) {
		emit(t.Class, t.Text)
	}
	emit(TokString, tag)
}

// highlightHTML renders SQL as HTML spans for a <pre> element.
func highlightHTML(sql string) template.HTML {
	var b strings.Builder
	for _, t := range Highlight(sql) {
		if t.Class == TokPlain {
			b.WriteString(html.EscapeString(t.Text))
			continue
		}
		b.WriteString(`<span class="` + t.Class + `">`)
		b.WriteString(html.EscapeString(t.Text))
		b.WriteString(`</span>`)
	}
	return template.HTML(b.String())
}
