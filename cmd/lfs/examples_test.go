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
