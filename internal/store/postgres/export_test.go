package postgres

// Connects returns how many LISTEN sessions the notifier has opened.
func (s *Store) Connects() int64 { return s.feed.connects.Load() }

// SetOnBatch sets the ingest batcher's hook; call it before any Ingest.
func (s *Store) SetOnBatch(f func(n int)) { s.ingest.onBatch = f }

// Queued is how many ingests wait for a committer.
func (s *Store) Queued() int { return len(s.ingest.reqs) }

// Pings returns how many idle pings the notifier made.
func (s *Store) Pings() int64 { return s.feed.pings.Load() }

// SetOnNotices sets the notice sender's hook; call it before any write.
func (s *Store) SetOnNotices(f func(chans, payloads []string)) { s.notices.onSend = f }
