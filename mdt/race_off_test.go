//go:build !race

package mdt

const raceEnabled = false
