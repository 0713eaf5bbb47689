package main

import (
	"testing"

	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/cmd/internal/clitest"
)

// TestCompletionLive completes devices and changelog user ids from the
// server.
func TestCompletionLive(t *testing.T) {
	s := clitest.StartServer(t)
	dev := s.Device
	if _, err := s.MDT().Log().Register(store.RegisterOptions{Name: "audit"}); err != nil {
		t.Fatal(err)
	}
	const noFiles = ":4\n"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"__complete", "changelog", ""}, Stdout: dev + "\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "changelog", dev, "--user", ""}, Stdout: "cl1-audit\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "changelog_clear", "lus"}, Stdout: dev + "\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "changelog_clear", dev, ""}, Stdout: "cl1\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "changelog_clear", "lustre-MDT0009", ""}, Stdout: noFiles, Stderr: "re:.*"},
	})
}
