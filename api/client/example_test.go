package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/mdt"
)

// exampleServer starts an in-process MDT on a unix socket with the
// consumer "indexer" registered and two directories made, points
// MDT_SERVER at it, and returns what stops it. In production the server
// is a running mdtd.
func exampleServer() (stop func()) {
	dir, err := os.MkdirTemp("", "flex")
	if err != nil {
		log.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := mdt.Open(filepath.Join(dir, "data"), &mdt.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.Log().Register(store.RegisterOptions{Name: "indexer"}); err != nil {
		log.Fatal(err)
	}
	for _, d := range []string{"pics", "docs"} {
		if _, err := m.Mkdir(context.Background(), mdt.Cred{}, d, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	srv, err := api.New(m, api.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(lis) //nolint:errcheck // returns nil after Shutdown
	old, had := os.LookupEnv(client.EnvServer)
	os.Setenv(client.EnvServer, "unix:"+sock)
	return func() {
		srv.Shutdown(context.Background())
		m.Close()
		os.RemoveAll(dir)
		if had {
			os.Setenv(client.EnvServer, old)
		} else {
			os.Unsetenv(client.EnvServer)
		}
	}
}

// A consumer follows the changelog as its registered user: records come
// from its own cleared point, and Follow clears them (in batches) once the
// handler returned nil. The README's consumer's guide shows the part
// between the README markers.
func ExampleClient_Follow() {
	stop := exampleServer()
	defer stop()

	// README: begin
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.Dial("") // $MDT_SERVER, else mdtd's default socket
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// "indexer" registered once: lctl --device lustre-MDT0000 changelog_register -n -u indexer
	err = c.Follow(ctx, "lustre-MDT0000", "indexer", func(recs []*changelog.Record) error {
		for _, r := range recs {
			fmt.Println(r.Index, r.Type, r.Name, r.TFID)
			if r.Index == 2 {
				cancel() // a real consumer follows until it is stopped
			}
		}
		return nil // handled: Follow may clear these records now
	}, client.FollowOptions{})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	// README: end

	users, err := c.Users(context.Background(), "lustre-MDT0000")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(users.GetUsers()[0].GetDisplayName(), "cleared to", users.GetUsers()[0].GetIndex())
	// Output:
	// 1 MKDIR pics [0x200000400:0x1:0x0]
	// 2 MKDIR docs [0x200000400:0x2:0x0]
	// cl1-indexer cleared to 2
}
