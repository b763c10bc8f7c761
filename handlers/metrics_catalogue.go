package handlers

// CatalogueTypes starts the published-events series of types at zero, so that dashboards see
// the types of a catalogue (at start-up and after each reload) before their first event. The
// type label only ever holds catalogue types: the publish route counts validated events only.
// Safe for concurrent use.
func (m *Metrics) CatalogueTypes(types []string) {
	for _, t := range types {
		m.publishedByType.WithLabelValues(t)
	}
}
