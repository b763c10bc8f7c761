package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
)

// openDiskStore builds the on-disk store in EVENTGATE_DATA_DIR: the log, receipts, job state and
// webhooks in one folder, and in-process leases and rate limits (one process owns the folder).
// Its error is the one start-up line: it names EVENTGATE_DATA_DIR and what is wrong.
func openDiskStore(cfg config, logger *slog.Logger, onInvalid func(event.ID, error)) (backend, func(), error) {
	metrics := newDiskMetrics()
	d, err := store.OpenDisk(cfg.DataDir, store.DiskOptions{
		Retention: cfg.Retention,
		Logger:    logger,
		OnInvalid: onInvalid,
		OnCommit:  metrics.commit,
	})
	switch {
	case errors.Is(err, store.ErrDiskLocked):
		return backend{}, nil, fmt.Errorf("EVENTGATE_DATA_DIR=%s: %w (one eventgate process per folder)", cfg.DataDir, err)
	case errors.Is(err, store.ErrDiskUnreadable):
		return backend{}, nil, fmt.Errorf("EVENTGATE_DATA_DIR=%s: %w; to start a new log, move the folder away (docs/storage.md, Recovery)", cfg.DataDir, err)
	case err != nil:
		return backend{}, nil, fmt.Errorf("EVENTGATE_DATA_DIR=%s: %w", cfg.DataDir, err)
	}
	metrics.disk = d
	dir, _ := filepath.Abs(cfg.DataDir)
	b, _ := d.Bounds(context.Background())
	logger.Info("log and state on disk", "data_dir", dir, "log_id", d.LogID(), "events", d.Stats().Events, "last", b.Last.String(), "retention", cfg.Retention)
	closeStore := func() {
		if err := d.Close(); err != nil {
			logger.Error("closing the disk store", "err", err)
		}
	}
	return backend{name: "disk", durable: true, log: d, receipts: store.NewDiskReceipts(d), leases: store.NewMemoryLeases(),
		jobs: store.NewDiskJobs(d, cfg.JobStateTTL), webhooks: store.NewDiskWebhooks(d), collectors: metrics.collectors()}, closeStore, nil
}

// warnDataDirIgnored says so when both stores are configured: Redis wins (several instances
// share it; a folder could serve only one), and the folder is left alone.
func warnDataDirIgnored(cfg config, logger *slog.Logger) {
	if cfg.DataDir != "" {
		logger.Warn("EVENTGATE_REDIS_URL is set: the log and its state are in Redis; EVENTGATE_DATA_DIR is ignored", "data_dir", cfg.DataDir)
	}
}
