package api

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// orderStream records the NextIndex of every message sent, and is slow
// now and then so that messages queue behind one being sent.
type orderStream struct {
	grpc.ServerStreamingServer[changelogv1.ReadResponse]
	mu      sync.Mutex
	got     []uint64
	sending bool
	overlap bool
	rng     *rand.Rand
}

func (s *orderStream) SendMsg(m any) error {
	s.mu.Lock()
	if s.sending {
		s.overlap = true
	}
	s.sending = true
	s.got = append(s.got, m.(*changelogv1.ReadResponse).NextIndex)
	slow := s.rng.IntN(4) == 0
	s.mu.Unlock()
	if slow {
		time.Sleep(50 * time.Microsecond)
	}
	s.mu.Lock()
	s.sending = false
	s.mu.Unlock()
	return nil
}

// TestSendAllOrder: messages reach the stream in the order produce built
// them, never two at once, whether produce sends a small one itself or
// queues it for the sender (large ones, or while another is queued).
func TestSendAllOrder(t *testing.T) {
	st := &orderStream{rng: rand.New(rand.NewPCG(7, 8))}
	big := [][]byte{make([]byte, directSendBytes+1)}
	const n = 2000
	g, err := sendAll(context.Background(), st, func(ctx context.Context, send func(any) error) error {
		for i := range uint64(n) {
			m := &changelogv1.ReadResponse{NextIndex: i + 1}
			if i%5 == 0 {
				m.RawRecords = big
			}
			if err := send(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.got) != n {
		t.Fatalf("%d messages sent, want %d", len(st.got), n)
	}
	for i, idx := range st.got {
		if idx != uint64(i+1) {
			t.Fatalf("message %d sent as number %d: %v", idx, i+1, st.got[max(0, i-3):min(len(st.got), i+3)])
		}
	}
	if st.overlap {
		t.Fatal("two messages were sent at once")
	}
	if g.direct == 0 || g.direct == n {
		t.Fatalf("%d of %d messages sent by produce itself: both paths must be taken", g.direct, n)
	}
}
