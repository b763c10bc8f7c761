// Package event is eventgate's event model: log positions (ID), the event envelope (Event) and a
// validated event not yet in the log (Draft), the catalogue of accepted types with their strict
// decoding and payload sanitizing, and the topic/type filters and grants that select events.
// Values are immutable once built and safe to share between goroutines.
package event
