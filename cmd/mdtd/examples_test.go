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
	root.AddCommand(newCertsCmd(io.Discard, new(bool)))
	addExamples(root)
	clitest.CheckExamples(t, root)
}

// TestManPages: the man pages in docs/man are those the commands make
// (regenerate with FIDLOG_UPDATE_MAN=1 go test ./cmd/mdtd -run TestManPages).
func TestManPages(t *testing.T) {
	root, _ := newRootCmd(io.Discard, io.Discard)
	root.RunE = func(*cobra.Command, []string) error { return nil }
	root.AddCommand(newCertsCmd(io.Discard, new(bool)))
	addExamples(root)
	clitest.CheckManPages(t, root, "8")
}
