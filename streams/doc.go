// Package streams is eventgate's subscription core: the Log port that stores implement, the Hub
// that reads the log once per process and fans events out, and the Subscription each SSE,
// WebSocket or webhook consumer drains — history replay then live, with no gap and no duplicate
// at the seam, and a resync whenever the log cannot vouch for a position. See docs/architecture.md.
package streams
