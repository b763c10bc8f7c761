package store

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// sweepEvery is how often the disk store deletes expired receipts and job states.
const sweepEvery = time.Minute

// sweepChunk bounds the entries one sweep step deletes while holding its mutex.
const sweepChunk = 1000

// janitor sweeps expired receipts and job states until the store closes. Lookups check expiry
// themselves; the sweep only frees the space.
func (d *Disk) janitor() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-d.closing:
			return
		case now := <-t.C:
			d.sweep(now)
		}
	}
}

// sweep deletes the receipts and job states that expired by now.
func (d *Disk) sweep(now time.Time) {
	for _, s := range []struct {
		mu          *sync.Mutex
		index, main byte
	}{
		{&d.receiptsMu, prefixReceiptExpiry, prefixReceipt},
		{&d.jobsMu, prefixJobExpiry, prefixJob},
	} {
		for {
			s.mu.Lock()
			n, err := d.sweepStep(s.index, s.main, now)
			s.mu.Unlock()
			if err != nil {
				d.logger.Warn("disk store: sweeping expired entries failed", "err", err)
				break
			}
			if n < sweepChunk {
				break
			}
		}
	}
}

// sweepStep deletes up to sweepChunk expiry index entries due by now, each with its entry when
// the entry still carries that expiry (a later write moved it). It returns how many index
// entries it deleted. Caller holds the entries' mutex. The batch is not synced: a sweep lost to
// a crash is done again.
func (d *Disk) sweepStep(index, main byte, now time.Time) (int, error) {
	upper := binary.BigEndian.AppendUint64([]byte{index}, uint64(now.UnixMilli())+1)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{index}, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	wb := d.db.NewBatch()
	defer wb.Close()
	n := 0
	for ok := it.First(); ok && n < sweepChunk; ok = it.Next() {
		k := it.Key()
		if len(k) < 9 {
			continue
		}
		entry := append([]byte{main}, k[9:]...)
		v, closer, err := d.db.Get(entry)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			_ = it.Close()
			return 0, err
		default:
			if len(v) >= 8 && binary.BigEndian.Uint64(v) == binary.BigEndian.Uint64(k[1:9]) {
				_ = wb.Delete(entry, nil)
			}
			_ = closer.Close()
		}
		_ = wb.Delete(append([]byte(nil), k...), nil)
		n++
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return n, wb.Commit(pebble.NoSync)
}
