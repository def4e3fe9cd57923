//go:build race

package webhook

// raceDetector reports whether the tests run under -race, which makes the
// pure-Go SQLite and every store call several times slower.
const raceDetector = true
