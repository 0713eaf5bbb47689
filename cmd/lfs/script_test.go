package main

import (
	"testing"

	"github.com/fidlog/fidlog/cmd/internal/clitest"
)

// TestScripts runs testdata/script/*.txtar with the built lfs, lctl and mdc
// against a real mdtd (skipped while cmd/mdtd does not build).
func TestScripts(t *testing.T) { clitest.RunScripts(t, "testdata/script") }
