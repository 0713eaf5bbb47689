package main

import (
	"io"
	"testing"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/cmd/internal/clitest"
)

// TestExamples: every command's help has an Examples: section.
func TestExamples(t *testing.T) {
	root, _ := newRootCmd(io.Discard, io.Discard)
	root.RunE = func(*cobra.Command, []string) error { return nil } // as runContext does
	clitest.CheckExamples(t, root)
}
