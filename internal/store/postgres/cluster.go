package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/internal/store"
)

var _ store.Notifier = (*Store)(nil)

// ReplicaInfo is what a replica says about itself in its heartbeat.
type ReplicaInfo struct {
	Version      string
	StartedAt    time.Time
	ConfigSHA256 string // of the config file's bytes before ${VAR} expansion
}

// Heartbeat records that this replica is alive at now. The app calls it
// at start-up and then every few seconds (well under the alive window it
// passes to Replicas), and again after a reload with the new config hash.
func (s *Store) Heartbeat(ctx context.Context, info ReplicaInfo, now time.Time) error {
	if err := s.usable(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO replicas (name, version, started_at, last_seen_at, config_sha256)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET version = excluded.version, started_at = excluded.started_at,
			last_seen_at = GREATEST(replicas.last_seen_at, excluded.last_seen_at), config_sha256 = excluded.config_sha256`,
		s.replica, info.Version, ms(info.StartedAt), ms(now), info.ConfigSHA256)
	if err != nil {
		return s.fail("heartbeat", err)
	}
	return nil
}

// Replicas lists the replicas by name; Alive is a heartbeat within
// aliveWithin of now. Replicas not seen for forgetAfter are deleted first
// (0 keeps them), so names of long-gone processes do not pile up.
func (s *Store) Replicas(ctx context.Context, now time.Time, aliveWithin, forgetAfter time.Duration) ([]store.Replica, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if forgetAfter > 0 {
		if _, err := s.pool.Exec(ctx, `DELETE FROM replicas WHERE last_seen_at < $1`, ms(now.Add(-forgetAfter))); err != nil {
			return nil, s.fail("replicas", err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT name, version, started_at, last_seen_at, config_sha256,
		last_seen_at >= $1 FROM replicas ORDER BY name`, ms(now.Add(-aliveWithin)))
	if err != nil {
		return nil, s.fail("replicas", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Replica, error) {
		var x store.Replica
		err := r.Scan(&x.Name, &x.Version, &x.StartedAt, &x.LastSeenAt, &x.ConfigSHA256, &x.Alive)
		x.StartedAt, x.LastSeenAt = utc(x.StartedAt), utc(x.LastSeenAt)
		return x, err
	})
	if err != nil {
		return nil, s.fail("replicas", err)
	}
	return out, nil
}

// Lead makes this replica the holder of role (e.g. "housekeeping") until
// now+ttl, if no other replica holds it at now, or renews it if this one
// does. It reports whether this replica leads, and the term: a number that
// grows at every change of holder, so work done under an old term can be
// told apart.
//
// The app calls it every ttl/3 and runs the role's work (retention purge,
// ReapExpired) only while it returns true. A leader that dies stops renewing
// and another replica takes over at most ttl later. A row with an expiry,
// not an advisory lock: it works through connection poolers, survives the
// notifier's reconnects, and operators can see who leads (SELECT * FROM
// leaders). Clocks must agree to well under ttl.
func (s *Store) Lead(ctx context.Context, role string, ttl time.Duration, now time.Time) (bool, int64, error) {
	if err := s.usable(); err != nil {
		return false, 0, err
	}
	if ttl <= 0 {
		return false, 0, fmt.Errorf("lead %s: ttl %v must be positive", role, ttl)
	}
	var term int64
	err := s.pool.QueryRow(ctx, `INSERT INTO leaders AS l (role, holder, term, lease_until) VALUES ($1, $2, 1, $4)
		ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until,
			term = CASE WHEN l.holder = excluded.holder THEN l.term ELSE l.term + 1 END
		WHERE l.holder = excluded.holder OR l.lease_until <= $3
		RETURNING term`, role, s.replica, ms(now), ms(now.Add(ttl))).Scan(&term)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, s.fail("lead "+role, err)
	}
	return true, term, nil
}

// Resign gives up role if this replica holds it (on shutdown), so another
// replica takes over at its next Lead call instead of after the ttl.
func (s *Store) Resign(ctx context.Context, role string) error {
	if err := s.usable(); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM leaders WHERE role = $1 AND holder = $2`, role, s.replica); err != nil {
		return s.fail("resign "+role, err)
	}
	return nil
}

// ReapExpired returns to the queue, due at now, at most limit deliveries
// whose lease ended by now without a completion (the replica died, hung or
// lost the database), and wakes their destinations on every replica. It
// returns what it reaped, for the log. Claim already takes an expired lease;
// the reaper makes such rows pending again in Stats and the UI, drops the
// dead owner, and announces them. Run it on the housekeeping leader only.
// Live leases are never touched, whoever holds them.
func (s *Store) ReapExpired(ctx context.Context, now time.Time, limit int) ([]store.ExpiredLease, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("reap: limit %d must be positive", limit)
	}
	at := ms(now)
	rows, err := s.pool.Query(ctx, `WITH x AS (
			SELECT id, lease_owner, lease_until FROM deliveries
			WHERE state = 'running' AND lease_until <= $1
			ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
		), r AS (
			UPDATE deliveries d SET state = 'pending', next_attempt_at = $1, lease_until = NULL,
				lease_owner = NULL, lease_token = NULL, updated_at = $1
			FROM x WHERE d.id = x.id
			RETURNING d.id, d.event_id, d.destination, COALESCE(x.lease_owner, ''), x.lease_until
		)
		SELECT * FROM r`, at, limit)
	if err != nil {
		return nil, s.fail("reap", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ExpiredLease, error) {
		var l store.ExpiredLease
		err := r.Scan(&l.DeliveryID, &l.EventID, &l.Destination, &l.Owner, &l.Until)
		l.Until = utc(l.Until)
		return l, err
	})
	if err != nil {
		return nil, s.fail("reap", err)
	}
	for _, l := range out {
		s.notices.wake(l.Destination)
	}
	return out, nil
}

// TakeTokens is the rate limit of one destination for all replicas
// together: a token bucket in one row, refilled at rate tokens per second up
// to burst, updated under a row lock so concurrent takers never share a
// token. It takes min(want, whole tokens available) and returns how many;
// with 0 it also returns when the next token is due (ask again then).
//
// The scheduler calls it before claiming, with want = the free worker slots,
// and claims at most granted deliveries; a claimed delivery that turns out
// not to be sent (paused, breaker) wastes its token, which only errs on the
// safe side. rate <= 0 means unlimited: it grants want without a query.
func (s *Store) TakeTokens(ctx context.Context, destination string, rate float64, burst, want int, now time.Time) (int, time.Time, error) {
	if err := s.usable(); err != nil {
		return 0, time.Time{}, err
	}
	if rate <= 0 || math.IsInf(rate, 1) {
		return want, time.Time{}, nil
	}
	if want <= 0 {
		return 0, time.Time{}, nil
	}
	burst = max(burst, 1)
	at := ms(now)
	var granted int
	var retry time.Time
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO rate_buckets (destination, tokens, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (destination) DO NOTHING`, destination, float64(burst), at); err != nil {
			return err
		}
		var tokens float64
		var updated time.Time
		if err := tx.QueryRow(ctx, `SELECT tokens, updated_at FROM rate_buckets WHERE destination = $1 FOR UPDATE`,
			destination).Scan(&tokens, &updated); err != nil {
			return err
		}
		// A replica whose clock lags the last taker's refills nothing
		// rather than going back in time.
		if at.After(updated) {
			tokens = math.Min(float64(burst), tokens+rate*at.Sub(updated).Seconds())
			updated = at
		}
		// The epsilon absorbs float rounding of the refill (4.999… is 5).
		granted = min(want, int(math.Floor(tokens+1e-9)))
		tokens = math.Max(tokens-float64(granted), 0)
		if granted == 0 {
			wait := time.Duration((1 - tokens) / rate * float64(time.Second))
			retry = updated.Add(max(wait, time.Millisecond))
		}
		_, err := tx.Exec(ctx, `UPDATE rate_buckets SET tokens = $2, updated_at = $3 WHERE destination = $1`,
			destination, tokens, updated)
		return err
	})
	if err != nil {
		return 0, time.Time{}, s.fail("rate limit "+destination, err)
	}
	return granted, retry, nil
}

// Breaker states as stored.
const (
	breakerClosed   = "closed"
	breakerOpen     = "open"
	breakerHalfOpen = "half_open"
)

// BreakerPermit asks the shared breaker of destination whether attempts may
// start at now. Closed: no limit. Open: none until the open period ends;
// then the breaker turns half-open and exactly one caller, on any replica,
// gets the probe (N = 1) for probeFor (the longest an attempt can take);
// others get 0. A probe whose replica died frees itself when probeFor ends.
// The closed case is one read; the others lock the row.
func (s *Store) BreakerPermit(ctx context.Context, destination string, now time.Time, probeFor time.Duration) (store.BreakerPermit, error) {
	if err := s.usable(); err != nil {
		return store.BreakerPermit{}, err
	}
	at := ms(now)
	var p store.BreakerPermit
	var state string
	err := s.pool.QueryRow(ctx, `SELECT breaker_state, breaker_gen FROM destination_state WHERE name = $1`,
		destination).Scan(&state, &p.Gen)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && state == breakerClosed) {
		p.N = -1
		return p, nil
	}
	if err != nil {
		return p, s.fail("breaker "+destination, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var until *time.Time
		if err := tx.QueryRow(ctx, `SELECT breaker_state, breaker_gen, breaker_until FROM destination_state
			WHERE name = $1 FOR UPDATE`, destination).Scan(&state, &p.Gen, &until); err != nil {
			return err
		}
		switch {
		case state == breakerClosed:
			p.N = -1
			return nil
		case until != nil && at.Before(*until):
			// Open, or half-open with the probe in flight.
			p.N, p.Until = 0, utc(*until)
			return nil
		}
		// The open period is over, or the probe's time ran out: this
		// caller probes, in a new generation.
		p.N, p.Gen, p.Until = 1, p.Gen+1, ms(now.Add(probeFor))
		_, err := tx.Exec(ctx, `UPDATE destination_state SET breaker_state = $2, breaker_gen = $3, breaker_until = $4
			WHERE name = $1`, destination, breakerHalfOpen, p.Gen, p.Until)
		return err
	})
	if err != nil {
		return store.BreakerPermit{}, s.fail("breaker "+destination, err)
	}
	return p, nil
}

// BreakerRecord feeds the shared breaker of destination the result of an
// attempt that began in generation gen (from BreakerPermit); results of
// older generations are ignored, so a slow attempt begun before the breaker
// opened cannot close or re-open it. Closed: threshold consecutive failures
// (counted across replicas) open it for openFor; a success resets the count.
// Half-open: the probe's success closes it, its failure opens it again, a
// neutral result lets the next caller probe. It returns the state after the
// call ("closed", "open", "half_open"). threshold <= 0: never opens.
func (s *Store) BreakerRecord(ctx context.Context, destination string, gen int64, h store.BreakerHealth,
	threshold int, openFor time.Duration, now time.Time) (string, error) {
	if err := s.usable(); err != nil {
		return "", err
	}
	at := ms(now)
	var state string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if h == store.BreakerFailed {
			if _, err := tx.Exec(ctx, `INSERT INTO destination_state (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`,
				destination); err != nil {
				return err
			}
		}
		var cur int64
		var failures int
		err := tx.QueryRow(ctx, `SELECT breaker_state, breaker_gen, breaker_failures FROM destination_state
			WHERE name = $1 FOR UPDATE`, destination).Scan(&state, &cur, &failures)
		if errors.Is(err, pgx.ErrNoRows) {
			state = breakerClosed // never failed: nothing to record
			return nil
		}
		if err != nil || cur != gen {
			return err
		}
		next, nextGen, until := state, cur, (*time.Time)(nil)
		switch {
		case state == breakerClosed && h == store.BreakerOK:
			if failures == 0 {
				return nil
			}
			failures = 0
		case state == breakerClosed && h == store.BreakerFailed:
			failures++
			if threshold > 0 && failures >= threshold {
				u := ms(now.Add(openFor))
				next, nextGen, failures, until = breakerOpen, cur+1, 0, &u
			}
		case state == breakerHalfOpen && h == store.BreakerOK:
			next, nextGen, failures = breakerClosed, cur+1, 0
		case state == breakerHalfOpen && h == store.BreakerFailed:
			u := ms(now.Add(openFor))
			next, nextGen, failures, until = breakerOpen, cur+1, 0, &u
		case state == breakerHalfOpen && h == store.BreakerNeutral:
			until = &at // the probe told nothing: the next caller probes
		default:
			return nil
		}
		state = next
		_, err = tx.Exec(ctx, `UPDATE destination_state SET breaker_state = $2, breaker_gen = $3,
			breaker_failures = $4, breaker_until = $5 WHERE name = $1`, destination, next, nextGen, failures, until)
		return err
	})
	if err != nil {
		return "", s.fail("breaker "+destination, err)
	}
	return state, nil
}
