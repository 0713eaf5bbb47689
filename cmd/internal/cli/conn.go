package cli

import (
	"github.com/fidlog/fidlog/api/client"
)

// Conn is a connection to one mdtd: the Go client's, shared by every
// command (one dialer, one set of connection flags).
type Conn = client.Client

// ConnError reports that the server could not be reached.
type ConnError = client.ConnError
