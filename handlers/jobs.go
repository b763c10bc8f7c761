package handlers

import (
	"fmt"
	"net/http"
	"regexp"

	"github.com/gin-gonic/gin"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// job serves GET /api/v1/jobs/{id} (docs/api.md#job-and-queue-state): the job's state folded from
// the log.
func (s *Server) job(c *gin.Context) {
	id := c.Param("id")
	if !uuidPattern.MatchString(id) {
		s.fail(c, fmt.Errorf("%w: job id %s is not a UUID", errBadRequest, quoteCut(id)))
		return
	}
	st, ok, err := s.jobs.Job(c, toLowerASCII(id))
	if err != nil {
		s.fail(c, err)
		return
	}
	if !ok || !s.grantsTopic(c, "jobs/"+st.JobID) {
		// Outside the token's grant is 404 too, so job ids are not confirmed.
		s.fail(c, fmt.Errorf("%w: no job %s", errNotFound, id))
		return
	}
	c.JSON(http.StatusOK, st)
}

// queue serves GET /api/v1/queue: the latest queue.status.
func (s *Server) queue(c *gin.Context) {
	st, ok, err := s.jobs.Queue(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !ok || !s.grantsTopic(c, "queue") {
		s.fail(c, fmt.Errorf("%w: no queue status has been published", errNotFound))
		return
	}
	c.JSON(http.StatusOK, st)
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch >= 'A' && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

// grantsTopic reports whether the request's token may see topic (always, with auth off or a
// token without a topics claim).
func (s *Server) grantsTopic(c *gin.Context, topic string) bool {
	p := principalOf(c)
	if p == nil || p.Topics == nil {
		return true
	}
	for _, g := range p.Topics {
		if g.Match(topic) {
			return true
		}
	}
	return false
}
