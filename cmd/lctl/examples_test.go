package main

import (
	"io"
	"testing"

	"github.com/fidlog/fidlog/cmd/internal/clitest"
)

// TestExamples: every command's help has an Examples: section.
func TestExamples(t *testing.T) {
	clitest.CheckExamples(t, newRootCmd(io.Discard, io.Discard))
}

// TestManPages: the man pages in docs/man are those the commands make
// (regenerate with FIDLOG_UPDATE_MAN=1 go test ./cmd/lctl -run TestManPages).
func TestManPages(t *testing.T) {
	root := newRootCmd(io.Discard, io.Discard)
	clitest.CheckManPages(t, root, "8")
}
