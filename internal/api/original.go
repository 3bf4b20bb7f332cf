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
// answer {job: {field: value}} in the original's layout (format.Options.Original: indented JSON,
// the original's infa file, failed written as "failure") and stay permissive: closing or failing
// a job that is not open is not an error here (it is on the v1 API), but it changes nothing
// either: close_batch and fail_batch end only the jobs open in the workflow's current batch, so
// that a late or repeated call never flips a result (SPEC.md).
func (s *Server) routesOriginal() {
	s.engine.GET("/index", s.origIndex)
	s.engine.GET("/load_cfg/:wf", s.handle(s.origLoad))
	s.engine.GET("/get_status/:wf", s.handle(s.origStatus))
	s.engine.GET("/get_status/:wf/:format", s.handle(s.origStatus))
	s.engine.GET("/open_batch/:wf", s.handle(s.origOpen))
	s.engine.GET("/open_batch/:wf/:format", s.handle(s.origOpen))
	s.engine.GET("/close_batch/:wf", s.origEnd(batch.StatusSuccess))
	s.engine.GET("/fail_batch/:wf", s.origEnd(batch.StatusFailed))
}

// OriginalIndex is what the original's GET /index answered, which monitoring checks may match.
const OriginalIndex = "Batchy v0.00001"

func (s *Server) origIndex(c *gin.Context) {
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(OriginalIndex))
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
	s.origJSON(c, st.Jobs)
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
	opts, err := s.formatOptions(c, true)
	if err != nil {
		return err
	}
	st, err := s.opts.Store.State(c.Request.Context(), wf)
	if batch.ErrorCode(err) == batch.ENOTFOUND && c.Param("format") == "" && !s.opts.StrictOriginal {
		// The original answered 200 {} for a workflow it did not know (an empty Redis hash), and
		// scripts written against it may test for that; --strict-original makes it the 404 that
		// every other route answers.
		s.origJSON(c, nil)
		return nil
	}
	if err != nil {
		return err
	}
	s.render(c, f, opts, wf, st.Jobs.BatchID(), st.Jobs)
	return nil
}

func (s *Server) origOpen(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	// The format and its options are checked before the batch is opened: a typo must not open a
	// batch whose parameters the caller never sees.
	f, err := format.Parse(c.Param("format"))
	if err != nil {
		return err
	}
	opts, err := s.formatOptions(c, true)
	if err != nil {
		return err
	}
	st, err := s.opts.Store.Open(c.Request.Context(), wf, batch.OpenRequest{})
	if err != nil {
		return err
	}
	s.render(c, f, opts, wf, st.LastBatchID, st.Jobs)
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
		s.origJSON(c, st.Jobs)
		return nil
	})
}

// origJSON answers jobs as the original's JSON (see format.OriginalJSON).
func (s *Server) origJSON(c *gin.Context, jobs batch.Jobs) {
	c.Data(http.StatusOK, format.JSON.ContentType(), format.OriginalJSON(nil, jobs))
}

// formatOptions returns how a request's answer is rendered: in the original's layout on the
// original routes, with the infa dates of ?date_format= (an Informatica date format, or
// "original" for the original's Python str()) or else the route's default: the original's on the
// original routes (--original-infa-date-format), --infa-date-format on v1. A bad date_format is a
// 400 before anything changes.
func (s *Server) formatOptions(c *gin.Context, original bool) (format.Options, error) {
	o := s.opts.Format
	o.Original = original
	if original {
		o.InfaDateFormat = s.opts.OriginalInfaDateFormat
	}
	if v := c.Query("date_format"); v != "" {
		if err := format.CheckInfaDateFormat(v); err != nil {
			return o, batch.Errorf(batch.EINVALID, "query parameter date_format: %s (or use original)", batch.ErrorMessage(err))
		}
		o.InfaDateFormat = v
	}
	return o, nil
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
