//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package main

func fileLimit() (uint64, bool) { return 0, false }
