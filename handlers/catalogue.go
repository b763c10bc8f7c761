package handlers

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/event"
)

// catalogueRoutes adds GET /api/v1/catalogue (any authenticated token): the list of every event
// type, built-in and custom, with its topic template, data schema, sanitize rules and
// description (event.ListingEntry), the machine-readable contract of what may be published.
// current returns the catalogue to list (nil: event.Current).
func (s *Server) catalogueRoutes(api *gin.RouterGroup, current func() *event.Catalogue) {
	if current == nil {
		current = event.Current
	}
	api.GET("/catalogue", s.requireScope(""), func(c *gin.Context) {
		body, etag := current().Listing() // built once per catalogue: nothing to encode here
		h := c.Writer.Header()
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache") // revalidate: a reload may change it at any time
		if etagMatches(c.GetHeader("If-None-Match"), etag) {
			c.Status(http.StatusNotModified)
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	})
}

// etagMatches reports whether an If-None-Match header value names etag (or is "*"). Weak
// validators match too, as RFC 9110 asks of If-None-Match.
func etagMatches(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}
