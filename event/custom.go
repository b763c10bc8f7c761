package event

import (
	"slices"
	"strings"
	"sync/atomic"
)

// Catalogue is a set of accepted event types: the built-ins (docs/api.md#catalogue) and, when loaded from a
// file (LoadCatalogue), the operator's own types. A Catalogue is immutable once built and safe
// for concurrent use; a reload builds a new one and installs it (Install).
//
// Its methods ParseDraft, ParseBatch, DecodeEntry, KnownType and Types are those of the
// package-level functions, for this catalogue rather than the installed one.
type Catalogue struct {
	custom map[string]*customType // operator-defined types by name; nil for the built-ins only
	types  []string               // every type, built-in and custom, sorted
	want   string                 // types joined with ", ", for the unknown-type error
	// listing is the GET /api/v1/catalogue body and etag its strong ETag (catalogue_listing.go).
	listing []byte
	etag    string
}

// builtinCatalogue holds the built-in types only.
var builtinCatalogue = newCatalogue(nil)

// installed is the catalogue the package-level functions use. It is read on every parse (one
// atomic load, no lock, no allocation) and replaced whole by Install.
var installed atomic.Pointer[Catalogue]

// newCatalogue builds the catalogue of the built-ins plus custom (which it keeps).
func newCatalogue(custom map[string]*customType) *Catalogue {
	c := &Catalogue{custom: custom, types: slices.Clone(catTypes)}
	for name := range custom {
		c.types = append(c.types, name)
	}
	slices.Sort(c.types)
	c.want = strings.Join(c.types, ", ")
	c.listing, c.etag = c.buildListing()
	return c
}

// Builtin returns the catalogue of the built-in types only (the installed one until Install is
// called).
func Builtin() *Catalogue { return builtinCatalogue }

// Current returns the installed catalogue: the one publishing, stored-entry decoding and filters
// use now. A caller that needs one consistent view across several calls keeps the result.
func Current() *Catalogue {
	if c := installed.Load(); c != nil {
		return c
	}
	return builtinCatalogue
}

// Install makes c the catalogue of the package-level functions (ParseDraft, ParseBatch,
// DecodeEntry, KnownType, Types, NewFilter) and returns the one it replaces; nil installs the
// built-ins only. The swap is atomic: a parse in progress finishes with the catalogue it
// started with, and connections, filters and drafts made before stay as they are.
func Install(c *Catalogue) (previous *Catalogue) {
	if c == nil {
		c = builtinCatalogue
	}
	if p := installed.Swap(c); p != nil {
		return p
	}
	return builtinCatalogue
}

// KnownType reports whether t is a type of the catalogue.
func (c *Catalogue) KnownType(t string) bool {
	if _, ok := catSpecs[t]; ok {
		return true
	}
	_, ok := c.custom[t]
	return ok
}

// Custom reports whether t is one of the catalogue's operator-defined types.
func (c *Catalogue) Custom(t string) bool {
	_, ok := c.custom[t]
	return ok
}

// Types returns the catalogue's event types, built-in and custom, sorted. The caller owns the
// returned slice.
func (c *Catalogue) Types() []string { return slices.Clone(c.types) }

// DecodeEntry is the package-level DecodeEntry for this catalogue.
func (c *Catalogue) DecodeEntry(id ID, payload []byte) (*Event, error) {
	d, err := c.ParseDraft(payload)
	if err != nil {
		return nil, err
	}
	return NewEvent(id, d), nil
}
