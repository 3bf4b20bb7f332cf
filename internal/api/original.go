package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/format"
)

// routesOriginal registers the original Batchy's routes. They are GET requests that change state,
// as the original's were, so that existing curl calls and scheduler scripts keep working; they
// answer {job: {field: value}} and stay permissive: closing or failing a job that is not open is
// not an error here (it is on the v1 API), but it changes nothing either: close_batch and
// fail_batch end only the jobs open in the workflow's current batch, so that a late or repeated
// call never flips a result (SPEC.md).
func (s *Server) routesOriginal() {
	s.engine.GET("/load_cfg/:wf", s.handle(s.origLoad))
	s.engine.GET("/get_status/:wf", s.handle(s.origStatus))
	s.engine.GET("/get_status/:wf/:format", s.handle(s.origStatus))
	s.engine.GET("/open_batch/:wf", s.handle(s.origOpen))
	s.engine.GET("/open_batch/:wf/:format", s.handle(s.origOpen))
	s.engine.GET("/close_batch/:wf", s.origEnd(batch.StatusSuccess))
	s.engine.GET("/fail_batch/:wf", s.origEnd(batch.StatusFailed))
}

// origLoad loads cfg/<wf>.yaml. Unlike the original it keeps each job's runtime state; ?reset=true
// asks for the original's reset.
func (s *Server) origLoad(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	reset, err := boolQuery(c, "reset")
	if err != nil {
		return err
	}
	st, err := s.load(c.Request.Context(), wf, reset)
	if err != nil {
		return err
	}
	writeJobs(c, st.Jobs)
	return nil
}

func (s *Server) origStatus(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	f, err := format.Parse(c.Param("format"))
	if err != nil {
		return err
	}
	st, err := s.opts.Store.State(c.Request.Context(), wf)
	if err != nil {
		return err
	}
	s.render(c, f, wf, st.Jobs.BatchID(), st.Jobs)
	return nil
}

func (s *Server) origOpen(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	// The format is checked before the batch is opened: a typo must not open a batch whose
	// parameters the caller never sees.
	f, err := format.Parse(c.Param("format"))
	if err != nil {
		return err
	}
	st, err := s.opts.Store.Open(c.Request.Context(), wf, batch.OpenRequest{})
	if err != nil {
		return err
	}
	s.render(c, f, wf, st.LastBatchID, st.Jobs)
	return nil
}

func (s *Server) origEnd(status batch.Status) gin.HandlerFunc {
	return s.handle(func(c *gin.Context) error {
		wf, err := workflow(c)
		if err != nil {
			return err
		}
		st, err := s.opts.Store.End(c.Request.Context(), wf, batch.EndRequest{Status: status})
		if err != nil {
			return err
		}
		writeJobs(c, st.Jobs)
		return nil
	})
}

// writeJobs answers jobs as c.JSON(200, jobs) does, byte for byte. json.Marshal would check and
// compact MarshalJSON's text and escape HTML characters in it: a second pass for nothing when
// the text has no space between tokens and nothing to escape, as stored fields nearly always.
func writeJobs(c *gin.Context, jobs batch.Jobs) {
	b := jobs.AppendJSON(nil)
	if !compactPlain(b) {
		c.JSON(http.StatusOK, jobs)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}

// compactPlain reports whether JSON text is one json.Marshal leaves as it is: no white space
// outside strings, no control characters (which valid JSON has only as white space), and none of
// the characters it escapes for HTML (<, >, &, U+2028, U+2029, whose UTF-8 starts with 0xE2).
func compactPlain(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0xE2:
			return false
		case inString && c == '\\':
			i++ // the escaped character, which may be a quote
		case c == '"':
			inString = !inString
		case c == ' ' && !inString:
			return false
		}
	}
	return true
}

// boolQuery reads an optional boolean query parameter; absent is false.
func boolQuery(c *gin.Context, name string) (bool, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, batch.Errorf(batch.EINVALID, "query parameter %s must be true or false, got %q", name, v)
	}
	return b, nil
}
