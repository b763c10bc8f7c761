package event

// Topic grants: the patterns of a token's topics claim bound everything the token touches
// (docs/api.md#topic-grants): streams, history, jobs, publish and webhooks. A grant is a []Pattern;
// nil means unrestricted. The functions here are pure and safe for concurrent use.

// anyTopic is "*": what a webhook (or filter) without topics stands for.
var anyTopic = Pattern{text: "*", wild: true}

// GrantCovers reports whether grant covers every pattern of topics, that is whether each of them
// is covered (Pattern.Covers) by some pattern of the grant. When it does not, uncovered is the
// first pattern that is not. A nil grant is unrestricted and covers everything. An empty topics
// list means every topic ("*", as for a webhook without topics), so only a grant holding "*"
// covers it.
func GrantCovers(grant, topics []Pattern) (uncovered Pattern, ok bool) {
	if grant == nil {
		return Pattern{}, true
	}
	if len(topics) == 0 {
		topics = []Pattern{anyTopic}
	}
	for _, q := range topics {
		if !grantCovers(grant, q) {
			return q, false
		}
	}
	return Pattern{}, true
}

func grantCovers(grant []Pattern, q Pattern) bool {
	for _, g := range grant {
		if g.Covers(q) {
			return true
		}
	}
	return false
}

// GrantCoversTopics is GrantCovers for patterns as written (a stored webhook's topics). A pattern
// that does not parse is never covered: a grant must not be widened by a malformed record.
func GrantCoversTopics(grant []Pattern, topics []string) bool {
	if grant == nil {
		return true
	}
	ps := make([]Pattern, 0, len(topics))
	for _, t := range topics {
		p, err := ParsePattern(t)
		if err != nil {
			return false
		}
		ps = append(ps, p)
	}
	_, ok := GrantCovers(grant, ps)
	return ok
}

// GrantMatches reports whether grant allows the concrete topic of an event ("jobs/<uuid>",
// "queue"). A nil grant allows every topic.
func GrantMatches(grant []Pattern, topic string) bool {
	if grant == nil {
		return true
	}
	for _, g := range grant {
		if g.Match(topic) {
			return true
		}
	}
	return false
}
