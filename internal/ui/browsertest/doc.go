// Package browsertest drives the whole program and its web UI in a headless
// Chromium: it has only tests. It is a package of its own so that the UI's
// handler tests do not depend on every other part of the program compiling.
package browsertest
