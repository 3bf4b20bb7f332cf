package ui

import (
	"encoding/binary"
	"fmt"
	"html/template"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The dashboard's rows cost most of its time in the template (text/template calls every function
// and escaper by reflection: about 400 allocations a row), while a refresh shows mostly the same
// rows again. So each row is rendered on its own ("row" in dashboard.html) and its HTML kept,
// keyed by everything it shows: its view (every field, appendValue), whether the page has actions
// (the menu's shell: its buttons are fetched when it opens, dashboardActions), and the year of the
// page's clock (relTime and shortTime show a year only when it is not now's: the clock is
// otherwise not in a row, so that a refresh of an unchanged page answers 304). A row whose view
// changes (a job ends, a running batch's duration grows) gets a new key; the old entries go when
// the cache is full.

// rowData is what the "row" template gets: the page (its clock and CanAct) and the row.
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
func appendRowKey(b []byte, p *page, w *wfView) []byte {
	b = strconv.AppendInt(b, int64(p.Now.UTC().Year()), 10)
	b = strconv.AppendBool(b, p.CanAct)
	return appendValue(b, reflect.ValueOf(w).Elem())
}

var timeType = reflect.TypeFor[time.Time]()

// appendValue appends every field of v, walked by reflection, unambiguously: numbers and lengths
// as varints, strings after their length, times as their instant and zone. It is the row key's
// encoding: a complete one by construction (a field added to wfView joins the key with no change
// here), and several times cheaper than JSON, whose times go through MarshalJSON and a validity
// check each.
func appendValue(b []byte, v reflect.Value) []byte {
	if v.Type() == timeType {
		var t time.Time
		if v.CanAddr() {
			t = *v.Addr().Interface().(*time.Time) // a pointer: no copy to the heap
		} else {
			t = v.Interface().(time.Time)
		}
		name, offset := t.Zone()
		b = binary.AppendVarint(append(b, 't'), t.UnixNano())
		b = binary.AppendVarint(b, int64(offset))
		return appendString(b, name)
	}
	switch v.Kind() {
	case reflect.String:
		return appendString(b, v.String())
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return binary.AppendUvarint(b, v.Uint())
	case reflect.Float32, reflect.Float64:
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float()))
	case reflect.Struct:
		for i := range v.NumField() {
			b = appendValue(b, v.Field(i))
		}
		return b
	case reflect.Slice, reflect.Array:
		b = binary.AppendUvarint(append(b, '['), uint64(v.Len()))
		for i := range v.Len() {
			b = appendValue(b, v.Index(i))
		}
		return b
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, 'n')
		}
		return appendValue(append(b, 'p'), v.Elem())
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) })
		b = binary.AppendUvarint(append(b, '{'), uint64(len(keys)))
		for _, k := range keys {
			b = appendValue(appendValue(b, k), v.MapIndex(k))
		}
		return b
	}
	panic(fmt.Sprintf("ui: a row key cannot hold a %s", v.Type()))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// rowsHTML returns the rows' HTML, each rendered or kept. They stay apart (the template prints
// them in turn): one string of all the rows would be copied whole by the template's printing.
func (u *UI) rowsHTML(p *page, rows []*wfView) ([]template.HTML, error) {
	html := make([]template.HTML, len(rows))
	var key []byte
	for i, w := range rows {
		key = appendRowKey(key[:0], p, w)
		h, ok := u.rows.get(key)
		if !ok {
			var b strings.Builder
			if err := u.pages["dashboard"].ExecuteTemplate(&b, "row", rowData{Page: p, Row: w}); err != nil {
				return nil, err
			}
			h = b.String()
			u.rows.put(key, h)
		}
		html[i] = template.HTML(h)
	}
	return html, nil
}
