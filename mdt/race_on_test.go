//go:build race

package mdt

const raceEnabled = true
