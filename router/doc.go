// Package router decides where an event goes: Compile prepares a config's
// `routes:` once (match and exclude keys, globs, `when` programs), and Route
// returns a Decision, the destinations an event fans out to with the first
// route that named each, plus a Verdict per route that says why it matched
// or not (the reasons the dispatch log and the UI show).
//
// It does no I/O and knows destinations only by name: delivering is package
// internal/delivery's job.
package router
