package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/webhooks"
)

// maxWebhookBody caps a webhook management request body.
const maxWebhookBody = 64 << 10

// webhookRoutes registers the webhook management API (docs/api.md#webhooks), scope admin. Without a
// webhook service (Deps.Webhooks nil) the routes are absent.
func (s *Server) webhookRoutes(api *gin.RouterGroup) {
	if s.webhooks == nil {
		return
	}
	g := api.Group("/webhooks", s.requireScope(auth.ScopeAdmin))
	g.POST("", s.createWebhook)
	g.GET("", s.listWebhooks)
	g.GET("/:id", s.getWebhook)
	g.PATCH("/:id", s.patchWebhook)
	g.DELETE("/:id", s.deleteWebhook)
	g.GET("/:id/deliveries", s.webhookDeliveries)
}

// webhookJSON is an endpoint as the API shows it. Secret is only set in the 201 of a creation.
type webhookJSON struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Topics         []string  `json:"topics"`
	Types          []string  `json:"types"`
	Description    string    `json:"description"`
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	Secret         string    `json:"secret,omitempty"`
}

func toWebhookJSON(w webhooks.Webhook) webhookJSON {
	topics, types := w.Topics, w.Types
	if len(topics) == 0 {
		topics = []string{"*"}
	}
	if types == nil {
		types = []string{}
	}
	return webhookJSON{ID: w.ID, URL: w.URL, Topics: topics, Types: types, Description: w.Description, Enabled: w.Enabled,
		DisabledReason: w.DisabledReason, CreatedAt: w.CreatedAt.UTC()}
}

// deliveryJSON is one delivery-log record.
type deliveryJSON struct {
	EventID     string     `json:"event_id"`
	Attempt     int        `json:"attempt,omitempty"`
	Outcome     string     `json:"outcome"`
	Status      int        `json:"status,omitempty"`
	Error       string     `json:"error,omitempty"`
	DurationMS  float64    `json:"duration_ms"`
	Time        time.Time  `json:"time"`
	NextAttempt *time.Time `json:"next_attempt"`
	Final       bool       `json:"final,omitempty"`
}

// decodeJSON reads a bounded JSON object body into v, rejecting unknown fields.
func (s *Server) decodeJSON(c *gin.Context, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(c, fmt.Errorf("%w: the request body is over %d bytes", errTooLarge, maxWebhookBody))
			return false
		}
		s.fail(c, fmt.Errorf("%w: reading the body: %v", errBadRequest, err))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.fail(c, fmt.Errorf("%w: the body is not the expected JSON object: %v", errBadRequest, err))
		return false
	}
	if dec.More() {
		s.fail(c, fmt.Errorf("%w: the body has data after the JSON object", errBadRequest))
		return false
	}
	return true
}

// createWebhook serves POST /api/v1/webhooks.
func (s *Server) createWebhook(c *gin.Context) {
	var req struct {
		URL         string   `json:"url"`
		Topics      []string `json:"topics"`
		Types       []string `json:"types"`
		Description string   `json:"description"`
	}
	if !s.decodeJSON(c, &req) {
		return
	}
	if p := principalOf(c); p != nil && p.Topics != nil {
		// Validate first (a bad pattern stays 400), then bound by the grant: every pattern of the
		// hook must be inside it, and a hook without topics receives every topic ("*").
		f, err := event.NewFilter(req.Topics, req.Types)
		if err != nil {
			s.fail(c, err)
			return
		}
		if q, ok := event.GrantCovers(p.Topics, f.Topics); !ok {
			what := fmt.Sprintf("topic %q", q.String())
			if len(f.Topics) == 0 {
				what = `every topic ("*", a webhook without topics)`
			}
			s.fail(c, fmt.Errorf("%w: the token's topics claim does not grant %s", errForbidden, what))
			return
		}
	}
	w, err := s.webhooks.Create(c, webhooks.CreateRequest{URL: req.URL, Topics: req.Topics, Types: req.Types, Description: req.Description})
	if err != nil {
		s.fail(c, err)
		return
	}
	out := toWebhookJSON(w)
	out.Secret = w.Secret
	c.Header("Location", "/api/v1/webhooks/"+w.ID)
	c.JSON(http.StatusCreated, out)
}

// listWebhooks serves GET /api/v1/webhooks (no secrets).
func (s *Server) listWebhooks(c *gin.Context) {
	list, err := s.webhooks.List(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p := principalOf(c)
	out := make([]webhookJSON, 0, len(list))
	for _, w := range list {
		if p == nil || event.GrantCoversTopics(p.Topics, w.Topics) {
			out = append(out, toWebhookJSON(w))
		}
	}
	c.JSON(http.StatusOK, gin.H{"webhooks": out})
}

// getWebhook serves GET /api/v1/webhooks/{id}.
func (s *Server) getWebhook(c *gin.Context) {
	w, err := s.webhooks.Get(c, c.Param("id"))
	if err == nil {
		err = webhookInGrant(c, w)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toWebhookJSON(w))
}

// webhookInGrant returns nil when the request's token may manage w: every topic pattern of w is
// inside its topics grant (docs/api.md#topic-grants). A hook outside is reported as absent
// (ErrNotFound, 404, the same message as for an unknown id), as jobs outside a grant are, so a
// restricted token learns nothing of other hooks.
func webhookInGrant(c *gin.Context, w webhooks.Webhook) error {
	if p := principalOf(c); p != nil && !event.GrantCoversTopics(p.Topics, w.Topics) {
		return fmt.Errorf("%w: %q", webhooks.ErrNotFound, w.ID)
	}
	return nil
}

// grantedWebhook checks, for a token with a topics grant, that hook id exists and is inside the
// grant, writing the error response when not. Hooks' topics never change after registration,
// so the check holds for the change that follows.
func (s *Server) grantedWebhook(c *gin.Context, id string) bool {
	if p := principalOf(c); p == nil || p.Topics == nil {
		return true
	}
	w, err := s.webhooks.Get(c, id)
	if err == nil {
		err = webhookInGrant(c, w)
	}
	if err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

// patchWebhook serves PATCH /api/v1/webhooks/{id} {"enabled":true|false}.
func (s *Server) patchWebhook(c *gin.Context) {
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if !s.decodeJSON(c, &req) {
		return
	}
	if req.Enabled == nil {
		s.fail(c, fmt.Errorf("%w: the body must set \"enabled\" to true or false", errBadRequest))
		return
	}
	if !s.grantedWebhook(c, c.Param("id")) {
		return
	}
	w, err := s.webhooks.SetEnabled(c, c.Param("id"), *req.Enabled)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toWebhookJSON(w))
}

// deleteWebhook serves DELETE /api/v1/webhooks/{id}: 204.
func (s *Server) deleteWebhook(c *gin.Context) {
	if !s.grantedWebhook(c, c.Param("id")) {
		return
	}
	if err := s.webhooks.Delete(c, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// webhookDeliveries serves GET /api/v1/webhooks/{id}/deliveries: the recent attempts, newest first.
func (s *Server) webhookDeliveries(c *gin.Context) {
	if !s.grantedWebhook(c, c.Param("id")) {
		return
	}
	list, err := s.webhooks.Deliveries(c, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]deliveryJSON, len(list))
	for i, d := range list {
		out[i] = deliveryJSON{EventID: d.EventID.String(), Attempt: d.Attempt, Outcome: d.Outcome, Status: d.Status, Error: d.Error,
			DurationMS: float64(d.Duration.Microseconds()) / 1000, Time: d.Time.UTC(), Final: d.Final}
		if !d.NextAttempt.IsZero() {
			next := d.NextAttempt.UTC()
			out[i].NextAttempt = &next
		}
	}
	c.JSON(http.StatusOK, gin.H{"deliveries": out})
}
