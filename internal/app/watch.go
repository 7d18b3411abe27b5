package app

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rcrouter/rcrouter/internal/clock"
)

// reloadDebounce lets an editor or a ConfigMap finish writing (often a
// rename plus a write) before the file is read.
const reloadDebounce = 250 * time.Millisecond

// watchConfig reloads when the config file changes. It watches the
// directory, not the file: editors and Kubernetes replace files atomically,
// which a watch on the file itself would lose. It returns a stop function
// that waits for the watcher goroutine.
func (a *App) watchConfig(ctx context.Context) (stop func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("config file watch unavailable; reload with SIGHUP or POST /api/v1/reload", "err", err)
		return func() {}
	}
	path, _ := filepath.Abs(a.opts.ConfigPath)
	if err := w.Add(filepath.Dir(path)); err != nil {
		a.log.Warn("config file watch unavailable; reload with SIGHUP or POST /api/v1/reload", "err", err)
		w.Close()
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		var timer clock.Timer
		var fire <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if p, _ := filepath.Abs(ev.Name); p != path || ev.Op == fsnotify.Chmod {
					continue
				}
				if timer == nil {
					timer = a.opts.Clock.NewTimer(reloadDebounce)
				} else {
					timer.Reset(reloadDebounce)
				}
				fire = timer.C()
			case <-fire:
				fire = nil
				a.ReloadFrom("file")
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				a.log.Warn("config file watch", "err", err)
			}
		}
	}()
	return func() { <-done }
}
