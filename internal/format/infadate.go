package format

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/batchy/batchy/internal/batch"
)

// An Informatica date format (TO_CHAR notation) is compiled once per rendering into a list of
// elements, so that an unknown token is reported before any output is written and each date is
// then rendered without re-parsing.
type infaDateFormat []dateElem

// dateElem is one element of a compiled date format: a token's renderer, or literal text.
type dateElem struct {
	render  func(time.Time) string
	literal string
}

// dateToken is one of Informatica's TO_CHAR date format strings.
type dateToken struct {
	name   string
	render func(time.Time) string
}

// dateTokens are Informatica's TO_CHAR format strings, longest first: the tokenizer takes the first
// that matches, which must be the longest (MONTH before MON before MM, SSSSS before SS, HH24 before
// HH, DDD before DD before D). TestDateTokensLongestFirst keeps the order honest. Names are matched
// without regard to case; MON, MONTH, DY and DAY render in English with an initial capital (Nov,
// November, Sun, Sunday) and AM/PM in capitals, as Informatica documents them.
var dateTokens = []dateToken{
	{"MONTH", func(t time.Time) string { return t.Month().String() }},
	{"SSSSS", func(t time.Time) string { return pad(t.Hour()*3600+t.Minute()*60+t.Second(), 5) }},
	{"YYYY", func(t time.Time) string { return pad(t.Year(), 4) }},
	{"HH24", func(t time.Time) string { return pad(t.Hour(), 2) }},
	{"HH12", hour12},
	{"A.M.", func(t time.Time) string { return meridian(t, "A.M.", "P.M.") }},
	{"P.M.", func(t time.Time) string { return meridian(t, "A.M.", "P.M.") }},
	{"YYY", func(t time.Time) string { return pad(t.Year()%1000, 3) }},
	{"MON", func(t time.Time) string { return t.Month().String()[:3] }},
	{"DAY", func(t time.Time) string { return t.Weekday().String() }},
	{"DDD", func(t time.Time) string { return pad(t.YearDay(), 3) }},
	{"YY", func(t time.Time) string { return pad(t.Year()%100, 2) }},
	{"RR", func(t time.Time) string { return pad(t.Year()%100, 2) }}, // as YY: RR only differs when parsing
	{"MM", func(t time.Time) string { return pad(int(t.Month()), 2) }},
	{"MI", func(t time.Time) string { return pad(t.Minute(), 2) }},
	{"MS", func(t time.Time) string { return pad(t.Nanosecond()/1e6, 3) }},
	{"US", func(t time.Time) string { return pad(t.Nanosecond()/1e3, 6) }},
	{"NS", func(t time.Time) string { return pad(t.Nanosecond(), 9) }},
	{"DD", func(t time.Time) string { return pad(t.Day(), 2) }},
	{"DY", func(t time.Time) string { return t.Weekday().String()[:3] }},
	{"HH", hour12}, // Informatica's HH is the 12-hour clock, unlike the 24-hour HH of other tools
	{"SS", func(t time.Time) string { return pad(t.Second(), 2) }},
	{"AM", func(t time.Time) string { return meridian(t, "AM", "PM") }},
	{"PM", func(t time.Time) string { return meridian(t, "AM", "PM") }},
	{"WW", func(t time.Time) string { return pad((t.YearDay()-1)/7+1, 2) }},
	{"Y", func(t time.Time) string { return strconv.Itoa(t.Year() % 10) }},
	{"D", func(t time.Time) string { return strconv.Itoa(int(t.Weekday()) + 1) }}, // Sunday is 1
	{"J", julianDay},
	{"Q", func(t time.Time) string { return strconv.Itoa((int(t.Month())-1)/3 + 1) }},
	{"W", func(t time.Time) string { return strconv.Itoa((t.Day()-1)/7 + 1) }},
}

// CheckInfaDateFormat validates an Informatica date format, such as the --infa-date-format flag,
// so that a typo stops the server at start rather than breaking every infa answer. It accepts
// Informatica's TO_CHAR format strings (YYYY YYY YY Y RR MM MON MONTH Q DD DDD D DY DAY W WW J
// HH24 HH12 HH MI SS SSSSS MS US NS AM PM A.M. P.M., in any case), text in double quotes, the
// letter T and any character that is not a letter. "" is valid and means DefaultInfaDateFormat;
// OriginalDates ("original") writes dates, null and booleans as the original Batchy did.
// The error is EINVALID and names the unknown token.
func CheckInfaDateFormat(s string) error {
	_, err := parseInfaDateFormat(s)
	return err
}

// parseInfaDateFormat compiles s, "" meaning DefaultInfaDateFormat. OriginalDates compiles to
// nil, which the infa writer reads as "as the original's Python wrote them".
func parseInfaDateFormat(s string) (infaDateFormat, error) {
	if s == OriginalDates {
		return nil, nil
	}
	if s == "" {
		s = DefaultInfaDateFormat
	}
	// A line break would split an infa line, and no format needs a control character, quoted or not.
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return nil, batch.Errorf(batch.EINVALID, "date format %q has a control character at position %d", clip(s), i+1)
		}
	}
	var f infaDateFormat
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, batch.Errorf(batch.EINVALID, "date format %q: the quote at position %d is not closed", clip(s), i+1)
			}
			f = append(f, dateElem{literal: s[i+1 : i+1+end]})
			i += end + 2
			continue
		}
		if tok, ok := matchDateToken(s[i:]); ok {
			f = append(f, dateElem{render: tok.render})
			i += len(tok.name)
			continue
		}
		if isLetter(c) && c != 'T' && c != 't' {
			end := i
			for end < len(s) && isLetter(s[end]) {
				end++
			}
			return nil, batch.Errorf(batch.EINVALID,
				"date format %q: unknown token %q at position %d (put literal text in double quotes)", clip(s), clip(s[i:end]), i+1)
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		f = append(f, dateElem{literal: s[i : i+n]})
		i += n
	}
	return f, nil
}

// format renders t, in UTC: batchy stores UTC and a parameter file has no room for a zone.
func (f infaDateFormat) format(t time.Time) string {
	t = t.UTC()
	var b strings.Builder
	for _, e := range f {
		if e.render != nil {
			b.WriteString(e.render(t))
		} else {
			b.WriteString(e.literal)
		}
	}
	return b.String()
}

// matchDateToken returns the longest token that s starts with, ignoring ASCII case.
func matchDateToken(s string) (dateToken, bool) {
	for _, tok := range dateTokens {
		if len(s) >= len(tok.name) && equalFoldASCII(s[:len(tok.name)], tok.name) {
			return tok, true
		}
	}
	return dateToken{}, false
}

// equalFoldASCII compares ignoring ASCII case only, so that no Unicode folding (the Kelvin sign
// folds to K) makes a non-ASCII character match a token.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if upper(a[i]) != upper(b[i]) {
			return false
		}
	}
	return true
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// pad writes n with at least width digits.
func pad(n, width int) string {
	s := strconv.Itoa(n)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// hour12 is the hour on a 12-hour clock, 12 for midnight and noon.
func hour12(t time.Time) string {
	h := t.Hour() % 12
	if h == 0 {
		h = 12
	}
	return pad(h, 2)
}

// meridian returns am or pm: Informatica's AM and PM tokens both mean "the meridian indicator".
func meridian(t time.Time, am, pm string) string {
	if t.Hour() < 12 {
		return am
	}
	return pm
}

// julianDay is the Julian day number, as Informatica's J (which ignores the time of day):
// 2440588 is the number of 1970-01-01.
func julianDay(t time.Time) string {
	days := t.Unix() / 86400
	if t.Unix()%86400 < 0 {
		days-- // floor, for dates before 1970
	}
	return strconv.FormatInt(days+2440588, 10)
}
