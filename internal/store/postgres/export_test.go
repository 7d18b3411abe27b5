package postgres

// Connects returns how many LISTEN sessions the notifier has opened.
func (s *Store) Connects() int64 { return s.feed.connects.Load() }
