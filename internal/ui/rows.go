package ui

import (
	"encoding/json"
	"html/template"
	"strconv"
	"strings"
	"sync"
)

// The dashboard's rows cost most of its time in the template (text/template calls every function
// and escaper by reflection: about 400 allocations a row), while a refresh shows mostly the same
// rows again. So each row is rendered on its own ("row" in dashboard.html) and its HTML kept,
// keyed by everything it shows: its view as JSON, whether the page has actions, whether a
// scheduler runs, and the year of the page's clock (relTime and shortTime show a year only when
// it is not now's: the clock is otherwise not in a row, so that a refresh of an unchanged page
// answers 304). A row whose view changes (a job ends, a running batch's duration grows) gets a
// new key; the old entries go when the cache is full.

// rowData is what the "row" template gets: the page (its clock, CanAct, Data.Scheduled) and the
// row.
type rowData struct {
	Page *page
	Row  *wfView
}

// rowCacheSize bounds the rows kept: 20 pages of 50 rows, a few hundred KB to a few MB.
const rowCacheSize = 1000

// rowCache keeps rendered rows by key (appendRowKey).
type rowCache struct {
	mu   sync.Mutex
	rows map[string]string
}

func newRowCache() *rowCache { return &rowCache{rows: make(map[string]string, rowCacheSize)} }

// get returns the row kept under key; looking up a []byte converted in place costs no copy.
func (c *rowCache) get(key []byte) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.rows[string(key)]
	return h, ok
}

func (c *rowCache) put(key []byte, h string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rows) >= rowCacheSize {
		clear(c.rows) // simpler than an LRU: the rows in view are rendered again once
	}
	c.rows[string(key)] = h
}

// appendRowKey appends what the row's HTML depends on (see the comment at the top) to b.
func appendRowKey(b []byte, p *page, scheduled bool, w *wfView) ([]byte, error) {
	b = strconv.AppendInt(b, int64(p.Now.UTC().Year()), 10)
	b = strconv.AppendBool(b, p.CanAct)
	b = strconv.AppendBool(b, scheduled)
	view, err := json.Marshal(w)
	return append(b, view...), err
}

// rowsHTML returns the rows' HTML, each rendered or kept.
func (u *UI) rowsHTML(p *page, scheduled bool, rows []*wfView) (template.HTML, error) {
	html := make([]string, len(rows))
	size := 0
	var key []byte
	for i, w := range rows {
		var err error
		key, err = appendRowKey(key[:0], p, scheduled, w)
		if err != nil {
			return "", err
		}
		h, ok := u.rows.get(key)
		if !ok {
			var b strings.Builder
			if err := u.pages["dashboard"].ExecuteTemplate(&b, "row", rowData{Page: p, Row: w}); err != nil {
				return "", err
			}
			h = b.String()
			u.rows.put(key, h)
		}
		html[i] = h
		size += len(h)
	}
	var out strings.Builder
	out.Grow(size)
	for _, h := range html {
		out.WriteString(h)
	}
	return template.HTML(out.String()), nil
}
